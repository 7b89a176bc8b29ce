"""The Gradio Blocks app: Annotate, Review, Pick and Stats tabs over one annotation store.

`build_app` runs in named steps: open the store and check the options, then lay out the
name row and the four tabs (each tab module owns its handlers and events). Everything the
app writes goes through `da2k.store.annotate`, one transaction per action.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import gradio as gr

from da2k.annotator_app.access import Access, read_auth_file
from da2k.annotator_app.annotate_tab import AnnotateTab
from da2k.annotator_app.context import Context, Images, Settings
from da2k.annotator_app.pick_tab import PickTab
from da2k.annotator_app.review_tab import ReviewTab
from da2k.annotator_app.stats_tab import StatsTab
from da2k.store import Store
from da2k.store.annotate import Da2kError

log = logging.getLogger(__name__)

CSS = (Path(__file__).parent / "assets" / "app.css").read_text(encoding="utf-8")

__all__ = ["AnnotatorBlocks", "build_app", "read_auth_file"]


class AnnotatorBlocks(gr.Blocks):
    """`gr.Blocks` whose `launch()` defaults to the app's stylesheet and login check."""

    da2k_access: Optional[Access] = None

    def launch(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("css", CSS)
        kwargs.setdefault("footer_links", [])
        if self.da2k_access is not None and self.da2k_access.logins:
            kwargs.setdefault("auth", self.da2k_access.check_login)
        return super().launch(*args, **kwargs)


def _context(
    db_url: str | Path,
    images_root: str | Path | None,
    settings: Settings,
    auth: str | Path | dict[str, str] | None,
    reviewers: str | Path | set[str] | None,
) -> Context:
    """Check the options, open the store (upgrading it in place if it is older) and look
    again at the images earlier sessions could not show."""
    if settings.votes_per_pair < 1:
        raise Da2kError("--votes-per-pair must be at least 1")
    if not 0.0 <= settings.gold_rate <= 1.0:
        raise Da2kError("the gold rate must be between 0 and 1")
    root = None
    if images_root is not None:
        root = Path(images_root).expanduser().resolve()
        if not root.is_dir():
            raise Da2kError(f"--images-root {images_root} is not a folder")
    access = Access.from_options(auth, reviewers)
    store = Store(db_url, create=False)
    images = Images(store, root)
    images.recheck_unavailable()
    return Context(store, access, settings, images)


def _name_row(ctx: Context) -> tuple[gr.Textbox, gr.Button, dict[str, Any]]:
    """The annotator's name, Start, and the "new annotator?" confirmation."""
    typed_names = not ctx.access.logins
    with gr.Row(elem_id="da2k-top", equal_height=True):
        gr.Markdown("## da2k: which point is closer?", elem_id="da2k-title")
        name = gr.Textbox(
            show_label=False,
            placeholder="your name",
            max_length=128,
            scale=2,
            visible=typed_names,
            elem_id="da2k-name",
            container=False,
        )
        start = gr.Button("Start", variant="primary", scale=0, min_width=90, visible=typed_names, elem_id="da2k-start")
    with gr.Row(visible=False, elem_id="da2k-confirm") as row:
        yes = gr.Button("Yes, start as a new annotator", variant="primary", elem_id="da2k-confirm-yes")
        no = gr.Button("No, let me correct my name", elem_id="da2k-confirm-no")
    return name, start, {"row": row, "yes": yes, "no": no}


def _layout(ctx: Context) -> AnnotatorBlocks:
    annotate, review, pick, stats = AnnotateTab(ctx), ReviewTab(ctx), PickTab(ctx), StatsTab(ctx)
    # delete_cache: the Pick tab's images are files in Gradio's cache; drop them after an hour.
    with AnnotatorBlocks(title="da2k annotate", analytics_enabled=False, delete_cache=(600, 3600)) as app:
        name, start, confirm = _name_row(ctx)
        remembered = gr.BrowserState("", storage_key="da2k-annotator")
        with gr.Tabs():
            with gr.Tab("Annotate", id="annotate"):
                annotate.build(name, start, confirm, remembered)
            with gr.Tab("Review", id="review"):
                review.build(name)
            with gr.Tab("Pick", id="pick"):
                pick.build(name)
            with gr.Tab("Stats", id="stats"):
                stats.build()
        fn, inputs, outputs = annotate.restore_event
        app.load(fn, inputs, outputs, api_visibility="private")
    return app


def build_app(
    db_url: str | Path,
    *,
    images_root: str | Path | None = None,
    votes_per_pair: int = 3,
    auth: str | Path | dict[str, str] | None = None,
    reviewers: str | Path | set[str] | None = None,
    gold_rate: float = 0.1,
    claim_ttl: float = 600.0,
) -> gr.Blocks:
    """The annotation app over the store at `db_url` (a path or SQLAlchemy URL).

    Images are read only from under `images_root` (default: the folders recorded in the
    database), and only when their bytes have the recorded sha256. `auth` is a
    `name:password` file (`+name:password` marks a reviewer) or a {name: password} dict;
    with it, people log in and their login is their annotator name. `reviewers` (a file of
    names, or a set) may settle conflicts; with `auth`, nobody else may; without `auth` and
    `reviewers`, anyone may. A pair is settled after `votes_per_pair` answers; `gold_rate` of
    the questions are gold; a claim lasts `claim_ttl` seconds. Launch the result with
    `.launch(server_name="127.0.0.1", ...)`.
    """
    settings = Settings(votes_per_pair=votes_per_pair, gold_rate=gold_rate, claim_ttl=claim_ttl)
    ctx = _context(db_url, images_root, settings, auth, reviewers)
    app = _layout(ctx)
    app.da2k_access = ctx.access
    app.queue(default_concurrency_limit=8)
    return app
