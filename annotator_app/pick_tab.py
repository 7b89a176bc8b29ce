"""The Pick tab: find an image, click two points on it, add them as a pair (source `manual`)."""

from __future__ import annotations

from typing import Any, Optional

import gradio as gr

from da2k.annotator_app.context import Context
from da2k.annotator_app.render import draw_points
from da2k.annotator_app.view import esc
from da2k.store import annotate as ann
from da2k.store.annotate import Da2kError


class PickTab:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def find(self, contains: str) -> Any:
        images = ann.find_images(self.ctx.store, (contains or "").strip(), limit=200)
        choices = [(f"{im['id']}: {im['path']}", im["id"]) for im in images]
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def _view(self, state: dict) -> tuple:
        image = self.ctx.images.load(state["root"], state["path"], state["sha256"])
        labels = {str(i + 1): p for i, p in enumerate(state["points"])}
        full, scale = draw_points(image, labels)
        state["scale"] = scale
        points = ", ".join(f"{k}: (row {r}, col {c})" for k, (r, c) in labels.items()) or "none yet"
        return state, full, f"Click two points. Picked: {points}."

    def choose(self, image_id: Optional[int]) -> tuple:
        im = ann.image_info(self.ctx.store, int(image_id)) if image_id else None
        if im is None:
            return {}, None, "Choose an image."
        state = {k: im[k] for k in ("root", "path", "sha256", "height", "width")}
        state.update(image=im["id"], points=[])
        try:
            return self._view(state)
        except Da2kError as exc:
            return {}, None, esc(exc)

    def click(self, state: dict, evt: gr.SelectData) -> tuple:
        if not state or "image" not in state:
            return state, gr.skip(), "Choose an image."
        x, y = evt.index[0], evt.index[1]
        row = min(state["height"] - 1, max(0, int(y / state["scale"])))
        col = min(state["width"] - 1, max(0, int(x / state["scale"])))
        state["points"] = ([] if len(state["points"]) >= 2 else state["points"]) + [(row, col)]
        return self._view(state)

    def add(self, state: dict, typed: str, request: gr.Request) -> tuple:
        if not state or len(state.get("points", [])) != 2:
            return state, gr.skip(), "Click two points first."
        try:
            author = self.ctx.who(typed, request)
            first, second = state["points"]
            pair_id = ann.add_manual_pair(self.ctx.store, state["image"], first, second, author)
        except Da2kError as exc:
            return state, gr.skip(), esc(exc)
        state["points"] = []
        out = self._view(state)
        return out[0], out[1], f"Added pair {pair_id} (manual, waiting for answers). " + out[2]

    def build(self, name: gr.Textbox) -> None:
        info = gr.Markdown("Find an image, click two points on it, then add the pair.")
        state = gr.State({})
        with gr.Row():
            contains = gr.Textbox(label="Path contains", scale=3)
            find = gr.Button("Find", scale=1)
        choice = gr.Dropdown(label="Image", choices=[], interactive=True)
        image = gr.Image(
            label="Click two points", type="pil", interactive=False, format="jpeg", elem_id="da2k-pick-image"
        )
        add = gr.Button("Add pair", variant="primary", elem_id="da2k-pick-add")
        private = {"api_visibility": "private"}
        find.click(self.find, [contains], [choice], **private)
        contains.submit(self.find, [contains], [choice], **private)
        choice.change(self.choose, [choice], [state, image, info], **private)
        image.select(self.click, [state], [state, image, info], **private)
        add.click(self.add, [state, name], [state, image, info], **private)
