"""The Review tab: conflicts, one at a time, decided by someone who did not answer them.

The pair is shown as A/B in an order drawn afresh (so the reviewer does not inherit the
order the voters saw), with both crops, every answer in those terms and the pair's history
in words. Keys (`a`, `b`, `d`, `n`) go through the same gate as the Annotate tab's.
"""

from __future__ import annotations

import random
import secrets
from typing import Optional

import gradio as gr

from da2k.annotator_app.annotate_tab import view_js
from da2k.annotator_app.context import Context
from da2k.annotator_app.view import review_empty, review_view, trail_sentence
from da2k.store import annotate as ann
from da2k.store.annotate import Da2kError

START = "Press n (or the button) to load the next conflict."
SAID = {"A": "A is closer", "B": "B is closer", "discard": "discarded"}


class ReviewTab:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _reviewer(self, typed: str, request: Optional[gr.Request]) -> str:
        name = self.ctx.who(typed, request)
        refusal = self.ctx.access.may_review(name)
        if refusal:
            raise Da2kError(refusal)
        return name

    def load(self, state: dict, reviewer: str, note: str = "") -> tuple[dict, str]:
        """The next conflict this reviewer may decide (passing over those put aside)."""
        passed = list((state or {}).get("passed", []))
        queue = ann.review_queue(self.ctx.store, reviewer=reviewer, exclude=passed, limit=1)
        if not queue and passed:  # all put aside: start the round again
            passed = []
            queue = ann.review_queue(self.ctx.store, reviewer=reviewer, limit=1)
        if not queue:
            return {"pair": None, "passed": passed}, review_empty(note, "No conflicts for you to review.")
        item = queue[0]
        swapped = random.SystemRandom().random() < 0.5
        a, b = (item["point2"], item["point1"]) if swapped else (item["point1"], item["point2"])
        token = secrets.token_hex(16)
        try:
            pictures = self.ctx.images.pictures(item["image_root"], item["image_path"], item["image_sha256"], a, b)
        except Da2kError as exc:
            ann.mark_unavailable(self.ctx.store, item["image_id"], getattr(exc, "reason", "unreadable"))
            passed.append(item["pair_id"])
            return {"pair": None, "passed": passed}, review_empty(
                f"{item['image_path']} cannot be shown ({exc}); skipped.", START
            )
        trail = [trail_sentence(e, swapped) for e in ann.pair_trail(self.ctx.store, item["pair_id"])]
        state = {"pair": item["pair_id"], "swapped": swapped, "token": token, "passed": passed}
        return state, review_view(item, swapped, token, pictures, trail, note)

    def act(self, state: dict, typed: str, note: str, evt: gr.EventData, request: gr.Request) -> tuple:
        """Outputs: state, view, note box."""
        data = getattr(evt, "_data", None) or {}
        action, token = str(data.get("action", "")), str(data.get("token") or "")
        state = state or {}
        try:
            reviewer = self._reviewer(typed, request)
        except Da2kError as exc:
            return state, review_empty(str(exc), START), gr.skip()
        pair = state.get("pair")
        if action == "next" or pair is None:
            if pair is not None:
                state = {**state, "passed": [*state.get("passed", []), pair]}
            return (*self.load(state, reviewer), gr.skip())
        if token != state.get("token"):
            return (*self.load(state, reviewer, "Not stored: that decision was for another view."), gr.skip())
        decision = action
        if action in ("A", "B"):
            decision = "point1" if (action == "A") != state["swapped"] else "point2"
        try:
            ann.decide_pair(self.ctx.store, pair, reviewer, decision, note or "")
        except Da2kError as exc:
            return (*self.load({**state, "passed": [*state.get("passed", []), pair]}, reviewer, str(exc)), gr.skip())
        return (*self.load(state, reviewer, f"Pair {pair}: '{SAID.get(action, action)}' saved."), "")

    def build(self, name: gr.Textbox) -> None:
        """The tab's view and its events (inside the Review tab)."""
        state = gr.State({"pair": None, "passed": []})
        open_to = "anyone (no --auth)" if self.ctx.access.reviewers is None else "reviewers only"
        gr.Markdown(f"Pairs whose answers conflict; a reviewer may not decide a pair they answered. Open to {open_to}.")
        view = gr.HTML(review_empty("", START), js_on_load=view_js("review"), elem_id="da2k-review", padding=False)
        note = gr.Textbox(label="Note (kept in the audit trail)", max_length=1000, elem_id="da2k-review-note")
        view.act(self.act, [state, name, note], [state, view, note], api_visibility="private", show_progress="hidden")
