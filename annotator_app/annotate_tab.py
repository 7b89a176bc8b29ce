"""The Annotate tab: a person's name, then one pair after another until none is left.

Everything on screen for a pair (progress line, note, image, crops, buttons, key legend)
is one HTML view, replaced as a whole; keys and clicks reach the server only through
`assets/keys.js` (a painted, settled view) as one `act` event carrying the view's token.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import gradio as gr

from da2k.annotator_app.context import SETTLE_S, Context
from da2k.annotator_app.render import ImageProblem
from da2k.annotator_app.view import ANSWER_WORDS, empty_view, esc, task_view
from da2k.store import annotate as ann
from da2k.store.annotate import Da2kError, StaleAnswer

log = logging.getLogger(__name__)

KEYS_JS = (Path(__file__).parent / "assets" / "keys.js").read_text(encoding="utf-8")
MISSING_IN_A_ROW = 50
"""Pairs whose image cannot be shown skipped for one request before giving up."""
_COUNTERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="da2k-progress")
WELCOME = "Type your name and press <b>Start</b> (or Enter). Then answer with the keys below."


def view_js(kind: str) -> str:
    """The js_on_load of a gated view: the shared script, then this view attached to it."""
    return KEYS_JS + f"\nwindow.da2k.attach({kind!r}, element, trigger, watch);\n"


def blank(note: str = "", message: str = WELCOME) -> str:
    return empty_view("", None, note, message)


class AnnotateTab:
    """The handlers of the Annotate tab, bound to the app's context."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _next(self, name: str) -> Optional[ann.Shown]:
        s = self.ctx.settings
        return ann.next_pair(self.ctx.store, name, ttl_seconds=s.claim_ttl, gold_rate=s.gold_rate)

    def show(self, name: str, shown: Optional[ann.Shown], note: str = "") -> tuple[dict, str]:
        """(session state, view) for the pair to show; pairs whose image cannot be shown are
        taken out of the queue for everyone and the next one is drawn."""
        for _ in range(MISSING_IN_A_ROW):
            if shown is None:
                message = (
                    f"Nothing left for <b>{esc(name)}</b> right now. Thank you! "
                    "New pairs appear here when others skip pairs or new images are mined."
                )
                return {"name": name, "pair": None}, empty_view(name, ann.progress(self.ctx.store, name), note, message)
            # The progress counts (a database read) run while the pictures are drawn.
            counting = _COUNTERS.submit(ann.progress, self.ctx.store, name)
            try:
                pictures = self.ctx.images.pictures(
                    shown.image_root, shown.image_path, shown.image_sha256, shown.a, shown.b
                )
            except ImageProblem as exc:
                counting.cancel()
                log.warning("pair %s not shown: %s", shown.pair_id, exc)
                ann.mark_unavailable(self.ctx.store, shown.image_id, exc.reason)
                ann.release(self.ctx.store, name, forget=True)
                note = f"{shown.image_path}: {exc.reason}; taken out of the queue (see Stats). {note}".strip()
                shown = self._next(name)
                continue
            progress = counting.result()
            view = task_view(name, shown.pair_id, shown.scenario, shown.token, pictures, progress, note)
            return {"name": name, "pair": shown.pair_id}, view
        return {"name": name, "pair": None}, blank(note, "Many images are missing or changed: see the Stats tab.")

    # identity -------------------------------------------------------------------------
    def start(self, typed: str, confirmed: bool, request: Optional[gr.Request]) -> tuple:
        """Outputs: state, view, name box, confirmation row, remembered name."""
        try:
            name = self.ctx.who(typed, request)
        except Da2kError as exc:
            return {"name": None, "pair": None}, blank(str(exc)), gr.skip(), gr.update(visible=False), gr.skip()
        known = self.ctx.access.logins or ann.is_known_annotator(self.ctx.store, name)
        if not known and not confirmed:
            message = (
                f"No annotator is called <b>{esc(name)}</b> yet. New annotator: press <b>Yes, start</b>; "
                "if you have annotated before, correct the name."
            )
            return {"name": None, "pair": None}, blank("", message), name, gr.update(visible=True), gr.skip()
        state, view = self.show(name, self._next(name))
        return state, view, name, gr.update(visible=False), name

    def start_asked(self, typed: str, request: gr.Request) -> tuple:
        return self.start(typed, False, request)

    def start_confirmed(self, typed: str, request: gr.Request) -> tuple:
        return self.start(typed, True, request)

    def restore(self, saved: str, request: gr.Request) -> tuple:
        """On page load: continue as the remembered (or logged-in) annotator."""
        if self.ctx.access.logins or saved:
            out = self.start(saved or "", False, request)
            if out[0]["name"] is not None:
                return out
        return {"name": None, "pair": None}, blank(), gr.skip(), gr.update(visible=False), gr.skip()

    # actions --------------------------------------------------------------------------
    def _answer(self, name: str, pair: Optional[int], action: str, token: str) -> str:
        """Store the answer or skip; the note for the page."""
        s = self.ctx.settings
        if pair is None:
            return "Nothing to answer."
        if action == "skip":
            ann.skip_pair(self.ctx.store, name, pair, token=token)
            return f"Skipped pair {pair} (no vote; u takes it back)."
        ann.answer_pair(
            self.ctx.store, name, pair, action, token=token, votes_per_pair=s.votes_per_pair, min_seconds=SETTLE_S
        )
        return f"Saved '{ANSWER_WORDS[action]}' for pair {pair} (u undoes)."

    def act(self, state: dict, evt: gr.EventData) -> tuple[dict, str]:
        """One key press or click from the page: answer, skip or undo."""
        data = getattr(evt, "_data", None) or {}
        action, token = str(data.get("action", "")), str(data.get("token") or "")
        name, pair = (state or {}).get("name"), (state or {}).get("pair")
        if not name:
            return state, blank("Type your name and press Start first.")
        if action == "undo":
            try:
                back = ann.undo_last(self.ctx.store, name, ttl_seconds=self.ctx.settings.claim_ttl)
            except Da2kError as exc:
                return self.show(name, self._next(name), str(exc))
            if back is None:
                return self.show(name, self._next(name), "Nothing to undo.")
            return self.show(name, back, f"Your last answer on pair {back.pair_id} was taken back: answer again.")
        if action not in ann.SHOWN_ANSWERS and action != "skip":
            return self.show(name, self._next(name), f"Unknown action {action!r}.")
        try:
            note = self._answer(name, pair, action, token)
        except StaleAnswer as exc:
            note = f"Not stored: {exc}."
        except Da2kError as exc:
            note = str(exc)
        return self.show(name, self._next(name), note)

    # layout ---------------------------------------------------------------------------
    def build(self, name: gr.Textbox, start: gr.Button, confirm: dict[str, Any], remembered: gr.BrowserState) -> None:
        """The tab's view and its events (inside the Annotate tab)."""
        state = gr.State({"name": None, "pair": None})
        task = gr.HTML(blank(), js_on_load=view_js("task"), elem_id="da2k-task", padding=False)
        # No progress overlay: the view itself shows when the next pair is ready.
        private = {"api_visibility": "private", "show_progress": "hidden"}
        outputs = [state, task, name, confirm["row"], remembered]
        blur = "() => { if (document.activeElement) document.activeElement.blur(); }"
        for trigger in (start.click, name.submit):
            trigger(self.start_asked, [name], outputs, **private).then(fn=None, js=blur)
        confirm["yes"].click(self.start_confirmed, [name], outputs, **private).then(fn=None, js=blur)
        confirm["no"].click(
            lambda: (gr.update(visible=False), blank("Correct your name, then press Start.")),
            None,
            [confirm["row"], task],
            **private,
        ).then(
            fn=None,
            js="() => { const n = document.querySelector('#da2k-name textarea, #da2k-name input'); if (n) n.focus(); }",
        )
        task.act(self.act, [state], [state, task], **private)
        self.restore_event = (self.restore, [remembered], outputs)
