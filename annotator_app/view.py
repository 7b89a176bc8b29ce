"""The HTML of the Annotate and Review views (what `assets/keys.js` gates and drives).

Each view is one block: its root carries `data-da2k-view` and the `data-token` of the display,
so the page can tell which pair is on screen, and the images arrive inline with it (no file
is fetched later, so "painted" means the pair is really visible). Text from the database or
from people is escaped here; nothing of it is interpreted as HTML.
"""

from __future__ import annotations

import html
import secrets
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from da2k.store.annotate import Progress

ANSWER_WORDS = {"A": "A is closer", "B": "B is closer", "unsure": "can't tell"}

INSTRUCTIONS = """
<details class="da2k-help"{open}><summary>How to answer (glass, mirrors, sky, drawings)</summary><ul>
<li>Which marked point is <b>closer to the camera</b>? Judge the surface right under the marker's centre;
the zoomed crops show it up close.</li>
<li><b>Glass, water, shop windows</b>: the point is on the pane (dirt, reflections, the frame show it) or on
what is seen through it; answer for that. If you cannot tell which, press <kbd>s</kbd>.</li>
<li><b>Mirrors</b>: a point on the mirror is as far as the mirror itself, not as the room seen in it.</li>
<li><b>Sky</b> is farther than everything else in the picture, clouds included.</li>
<li><b>Drawings, paintings, renders</b>: if the whole image is a drawing, answer for the scene it depicts;
a picture hanging on a wall is as far as the wall.</li>
<li>Not sure, blurred, or a point on an edge: <kbd>s</kbd> (can't tell). Not your kind of image, or
you would rather not: <kbd>n</kbd> or <kbd>Space</kbd> (skip, no vote). Dark or flat image:
<kbd>+</kbd>/<kbd>-</kbd> brightness, <kbd>c</kbd> contrast, <kbd>z</kbd> zoom the crops, <kbd>0</kbd> reset.</li>
</ul></details>
"""

TASK_LEGEND = (
    "<kbd>a</kbd> A is closer · <kbd>b</kbd> B is closer · <kbd>s</kbd> can't tell · "
    "<kbd>n</kbd>/<kbd>Space</kbd> skip (no vote) · <kbd>u</kbd> undo · <kbd>+</kbd>/<kbd>-</kbd> brightness · "
    "<kbd>c</kbd> contrast · <kbd>z</kbd> zoom · <kbd>0</kbd> reset · <kbd>Esc</kbd> leaves a text box"
)
REVIEW_LEGEND = (
    "<kbd>a</kbd> A is closer · <kbd>b</kbd> B is closer · <kbd>d</kbd> discard · "
    "<kbd>n</kbd>/<kbd>Space</kbd> next conflict · <kbd>+</kbd>/<kbd>-</kbd> brightness · <kbd>c</kbd> contrast · "
    "<kbd>z</kbd> zoom · type a note first, <kbd>Esc</kbd> to leave the note box"
)
EMPTY_NOTE = "Nothing is waiting for you: the answer keys do nothing now (u still takes back your last answer)."


def _nonce() -> str:
    """Makes every view differ from the one before, so the page always re-renders and unlocks."""
    return secrets.token_hex(4)


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


@dataclass(frozen=True)
class Pictures:
    """What the browser shows of a pair: the full image with A and B, and two crops (data
    URIs), with where each point lies in its crop (fractions x, y) to zoom about it."""

    full: str
    crop_a: str
    crop_b: str
    origin_a: tuple[float, float]
    origin_b: tuple[float, float]


def _crop(uri: str, origin: tuple[float, float], label: str, prefix: str) -> str:
    x, y = origin
    return (
        f'<figure class="da2k-crop" id="{prefix}-crop-{label.lower()}"><img class="da2k-adjust da2k-zoomable" src="{uri}" '
        f'data-origin="{x * 100:.1f}% {y * 100:.1f}%" alt="zoom around point {label}">'
        f"<figcaption>{label}</figcaption></figure>"
    )


def _buttons(spec: Sequence[tuple[str, str, str, str]]) -> str:
    return "".join(
        f'<button type="button" id="{id_}" data-act="{act}" tabindex="-1">{esc(text)} <kbd>{esc(key)}</kbd></button>'
        for act, text, key, id_ in spec
    )


TASK_BUTTONS = (
    ("A", "A is closer", "a", "da2k-a"),
    ("B", "B is closer", "b", "da2k-b"),
    ("unsure", "Can't tell", "s", "da2k-s"),
    ("skip", "Skip", "n", "da2k-n"),
    ("undo", "Undo", "u", "da2k-u"),
)
REVIEW_BUTTONS = (
    ("A", "A is closer", "a", "da2k-review-a"),
    ("B", "B is closer", "b", "da2k-review-b"),
    ("discard", "Discard", "d", "da2k-review-discard"),
    ("next", "Next conflict", "n", "da2k-review-load"),
)


def progress_bar(name: str, progress: Optional[Progress], extra: str = "") -> str:
    counts = ""
    if progress is not None:
        counts = (
            f'<span>answered today <b class="da2k-today">{progress.answered_today}</b></span>'
            f'<span><b class="da2k-left">{progress.left_for_you}</b> more for you</span>'
            f'<span><b class="da2k-waiting">{progress.waiting}</b> waiting in all</span>'
        )
    who = f'<span class="da2k-who"><b>{esc(name)}</b></span>' if name else ""
    return f'<div class="da2k-bar" id="da2k-info">{who}{counts}{extra}</div>'


def task_view(
    name: str, pair_id: int, scenario: str, token: str, pictures: Pictures, progress: Progress, note: str
) -> str:
    """A pair to answer (nothing on it says whether it is a gold question)."""
    about = f'<span class="da2k-pair">pair {pair_id} · {esc(scenario)}</span>'
    return (
        f'<div class="da2k-view" data-da2k-view="task" data-token="{esc(token)}" data-pair="{pair_id}" '
        f'data-empty-note="{esc(EMPTY_NOTE)}">'
        f"{progress_bar(name, progress, about)}"
        f'<div class="da2k-note" role="status">{esc(note)}</div>'
        '<div class="da2k-stage">'
        f'<div class="da2k-main" id="da2k-full"><img class="da2k-full da2k-adjust" src="{pictures.full}" '
        'alt="the image, with points A and B marked"></div>'
        '<div class="da2k-side"><div class="da2k-crops">'
        f"{_crop(pictures.crop_a, pictures.origin_a, 'A', 'da2k')}{_crop(pictures.crop_b, pictures.origin_b, 'B', 'da2k')}</div>"
        f'<div class="da2k-buttons">{_buttons(TASK_BUTTONS)}</div></div></div>'
        f'<div class="da2k-legend">{TASK_LEGEND} · <span class="da2k-levels"></span></div>'
        f"{INSTRUCTIONS.format(open='')}</div>"
    )


def empty_view(name: str, progress: Optional[Progress], note: str, message: str) -> str:
    """No pair on screen: before Start, or nothing left; keys say so instead of answering."""
    return (
        f'<div class="da2k-view" data-da2k-view="task" data-token="" data-view="{_nonce()}" '
        f'data-empty-note="{esc(EMPTY_NOTE)}">'
        f"{progress_bar(name, progress)}"
        f'<div class="da2k-note" role="status">{esc(note)}</div>'
        f'<div class="da2k-empty">{message}</div>'
        f'<div class="da2k-buttons" style="max-width: 232px">{_buttons(TASK_BUTTONS[-1:])}</div>'
        f'<div class="da2k-legend">{TASK_LEGEND}</div>{INSTRUCTIONS.format(open=" open")}</div>'
    )


def review_view(
    item: dict[str, Any], swapped: bool, token: str, pictures: Pictures, trail: list[str], note: str
) -> str:
    """A conflict: the pair as A/B (drawn afresh), every vote in those terms, the audit trail."""
    shown = {"point1": "B" if swapped else "A", "point2": "A" if swapped else "B"}
    votes = "".join(
        f"<li>{esc(v['annotator'])}: {esc(ANSWER_WORDS[shown.get(v['answer'], 'unsure')])}"
        f" ({(v['seconds'] or 0.0):.1f} s)</li>"
        for v in item["votes"]
    )
    reference = ""
    if item["reference_answer"] in shown:
        reference = (
            f"<p>Known answer (from {esc(item['source'])}): {esc(ANSWER_WORDS[shown[item['reference_answer']]])}</p>"
        )
    events = "".join(f"<li>{esc(line)}</li>" for line in trail)
    return (
        f'<div class="da2k-view" data-da2k-view="review" data-token="{esc(token)}" data-pair="{item["pair_id"]}">'
        f'<div class="da2k-bar" id="da2k-review-info"><span>Conflict: pair {item["pair_id"]} · {esc(item["scenario"])} · '
        f"{esc(item['image_path'])} · source {esc(item['source'])}</span></div>"
        f'<div class="da2k-note" role="status">{esc(note)}</div>'
        '<div class="da2k-stage">'
        f'<div class="da2k-main" id="da2k-review-full"><img class="da2k-full da2k-adjust" src="{pictures.full}" '
        'alt="the conflicting pair"></div>'
        '<div class="da2k-side"><div class="da2k-crops">'
        f"{_crop(pictures.crop_a, pictures.origin_a, 'A', 'da2k-review')}"
        f"{_crop(pictures.crop_b, pictures.origin_b, 'B', 'da2k-review')}</div>"
        f'<div class="da2k-buttons">{_buttons(REVIEW_BUTTONS)}</div></div></div>'
        f'<div class="da2k-legend">{REVIEW_LEGEND} · <span class="da2k-levels"></span></div>'
        f'<b>Answers</b><ul class="da2k-votes">{votes}</ul>{reference}'
        f'<b>What happened to this pair</b><ul class="da2k-trail">{events}</ul></div>'
    )


def review_empty(note: str, message: str) -> str:
    return (
        f'<div class="da2k-view" data-da2k-view="review" data-token="" data-view="{_nonce()}">'
        f'<div class="da2k-note" role="status">{esc(note)}</div>'
        f'<div class="da2k-empty">{esc(message)}</div>'
        f'<div class="da2k-buttons" style="max-width: 232px">{_buttons(REVIEW_BUTTONS[-1:])}</div></div>'
    )


def trail_sentence(event: dict[str, Any], swapped: bool) -> str:
    """One audit event in words, with stored points named as this review shows them."""
    shown = {"point1": "B" if swapped else "A", "point2": "A" if swapped else "B", "unsure": "unsure"}
    d, who, action = event["detail"] or {}, event["actor"], event["action"]
    at = str(event["at"])[:19]
    said = ANSWER_WORDS.get(shown.get(d.get("answer") or "", ""), "")
    phrases = {
        "human_vote": f"{who} answered '{said or d.get('answer')}' after {d.get('seconds', 0):.1f} s",
        "undo_vote": f"{who} took back their answer",
        "skip": f"{who} skipped it",
        "undo_skip": f"{who} took back their skip",
        "resolved": f"settled by the answers: {shown.get(d.get('answer') or '', '?')} is closer",
        "discarded": "the answers conflict: sent to review",
        "review": f"{who} reviewed it: {shown.get(d.get('decision'), d.get('decision'))}"
        + (f" (note: {d['note']})" if d.get("note") else ""),
        "manual_pair": f"{who} added this pair by hand",
    }
    return f"{at} UTC: {phrases.get(action, f'{who}: {action} {d}')}"
