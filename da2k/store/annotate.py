"""The annotation API in one namespace, as the annotation app uses it.

The queue (`queue.py`: what a person sees next, and their answers; `undo.py`: skips and undo;
`settle.py`: when answers settle a pair), review
(`review.py`), images and hand-picked pairs (`catalog.py`) and the numbers (`annotation_stats.py`)
live in their own modules; this one gathers them so the app imports the store through one name.
"""

from da2k.errors import Da2kError  # re-exported: the app imports the storage layer only
from da2k.store.annotation_stats import (
    MIN_ACTIVE_SECONDS,
    Progress,
    annotation_stats,
    fleiss_kappa,
    is_known_annotator,
    progress,
    waiting_count,
)
from da2k.store.catalog import (
    add_manual_pair,
    find_images,
    image_info,
    image_roots,
    mark_available,
    mark_unavailable,
    unavailable_images,
)
from da2k.store.queue import (
    SHOWN_ANSWERS,
    Answered,
    Shown,
    StaleAnswer,
    answer_pair,
    next_pair,
    normalize_name,
    release,
)
from da2k.store.review import decide_pair, pair_trail, review_queue
from da2k.store.schema import Presentation
from da2k.store.settle import majority_needed
from da2k.store.undo import skip_pair, undo_last

__all__ = [
    "MIN_ACTIVE_SECONDS",
    "SHOWN_ANSWERS",
    "Answered",
    "Da2kError",
    "Presentation",
    "Progress",
    "Shown",
    "StaleAnswer",
    "add_manual_pair",
    "annotation_stats",
    "answer_pair",
    "decide_pair",
    "find_images",
    "fleiss_kappa",
    "image_info",
    "image_roots",
    "is_known_annotator",
    "majority_needed",
    "mark_available",
    "mark_unavailable",
    "next_pair",
    "normalize_name",
    "pair_trail",
    "progress",
    "release",
    "review_queue",
    "skip_pair",
    "undo_last",
    "unavailable_images",
    "waiting_count",
]
