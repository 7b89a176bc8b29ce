"""Hard-pairs gallery: pairs missed by at least half of the models, as thumbnails with both points marked."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from PIL import Image, ImageDraw

from da2k.benchmark import SCENARIOS, Benchmark
from da2k.errors import Da2kError
from da2k.images import ModelError, decode_image, image_size
from da2k.results import PairKey, PairRow

CLOSER_COLOUR = (0, 114, 178)  # Okabe-Ito blue: circle = the annotated closer point
OTHER_COLOUR = (230, 159, 0)  # Okabe-Ito orange: square = the other point
THUMB_SIDE = 360


@dataclass(frozen=True)
class HardPair:
    key: PairKey
    scenario: str
    answers: tuple[tuple[str, bool], ...]  # (model label, correct) per model that scored it

    @property
    def n_wrong(self) -> int:
        return sum(1 for _, ok in self.answers if not ok)


def select_hard_pairs(
    labels: list[str], outcomes: list[dict[PairKey, PairRow]], per_scenario: int
) -> dict[str, list[HardPair]]:
    """Per scenario, up to `per_scenario` pairs missed by at least half of the models that
    scored them, the largest share wrong first; ties keep (image, pair_index) order."""
    keys = sorted(set().union(*(o.keys() for o in outcomes))) if outcomes else []
    by_scenario: dict[str, list[HardPair]] = {}
    for key in keys:
        answers = tuple((label, o[key].correct) for label, o in zip(labels, outcomes) if key in o)
        scenario = next(o[key].scenario for o in outcomes if key in o)
        pair = HardPair(key, scenario, answers)
        if pair.n_wrong and 2 * pair.n_wrong >= len(answers):
            by_scenario.setdefault(scenario, []).append(pair)
    order = sorted(by_scenario, key=lambda s: (SCENARIOS.index(s) if s in SCENARIOS else len(SCENARIOS), s))
    return {
        scenario: sorted(by_scenario[scenario], key=lambda p: (-p.n_wrong / len(p.answers), -p.n_wrong, p.key))[
            :per_scenario
        ]
        for scenario in order
    }


def thumb_name(key: PairKey) -> str:
    """A stable, filesystem-safe file name for a pair's thumbnail."""
    image, index = key
    stem = re.sub(r"[^A-Za-z0-9]+", "-", image.removeprefix("images/").rsplit(".", 1)[0]).strip("-")
    return f"{stem}-{index}.jpg"


def _marker(draw: ImageDraw.ImageDraw, row: float, col: float, colour: tuple, square: bool) -> None:
    r = 7
    box = (col - r, row - r, col + r, row + r)
    outline = dict(fill=colour, outline=(255, 255, 255), width=2)
    if square:
        draw.rectangle(box, **outline)
    else:
        draw.ellipse(box, **outline)


def make_thumbnail(bench: Benchmark, key: PairKey, side: int = THUMB_SIDE) -> bytes:
    """JPEG bytes: the image (EXIF orientation applied) scaled to `side`, closer point as a
    blue circle, other point as an orange square. Points are (row, col) in the oriented image.
    `bench` is read through the archive reader (a folder or a zip), pixels through the one loader."""
    image_key, index = key
    pairs = bench.annotations.get(image_key)
    if not isinstance(pairs, list) or not 0 <= index < len(pairs):
        raise Da2kError(
            f"{bench.archive.where}: no pair {index} for {image_key}; is --images the benchmark the results were scored on?"
        )
    pair = pairs[index]
    closer_name = pair.get("closer_point", "point1")
    other_name = "point2" if closer_name == "point1" else "point1"
    try:
        data = bench.read_bytes(image_key)
        scale = side / max(image_size(data))
        # JPEG: decode at a reduced scale no smaller than the thumbnail (several times faster).
        img = decode_image(data, reduce_for=side, name=bench.describe(image_key))
    except (Da2kError, ModelError) as exc:
        raise Da2kError(f"cannot read benchmark image: {exc}") from None
    # Small images are enlarged too, so the markers stay legible.
    fit = side / max(img.size)
    if fit != 1.0:
        img = img.resize((max(1, round(img.width * fit)), max(1, round(img.height * fit))), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(img)
    (r1, c1), (r2, c2) = pair[other_name], pair[closer_name]
    _marker(draw, r1 * scale, c1 * scale, OTHER_COLOUR, square=True)
    _marker(draw, r2 * scale, c2 * scale, CLOSER_COLOUR, square=False)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()
