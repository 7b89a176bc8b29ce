"""The Gradio Blocks app: Annotate, Review, Pick and Stats tabs over one annotation store.

Everything the app writes goes through `da2k.store.annotate` in one transaction per click;
the handlers only render. Text from the database or from users is shown in plain-text
cells or escaped, never interpreted as HTML or Markdown.
"""

from __future__ import annotations

import hmac
import logging
import random
import re
import time
from pathlib import Path
from typing import Any, Callable, Optional

import gradio as gr
from matplotlib.figure import Figure

from da2k.annotator_app.render import crop_around, draw_points, load_image, resolve_image
from da2k.store import Store
from da2k.store import annotate as ann
from da2k.store.annotate import Da2kError

log = logging.getLogger(__name__)

KEYS_JS = """
() => {
  if (window.__da2kKeys) return;
  window.__da2kKeys = true;
  const ids = {a: "da2k-a", b: "da2k-b", s: "da2k-s", u: "da2k-u"};
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const t = e.target;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    const id = ids[(e.key || "").toLowerCase()];
    if (!id) return;
    const node = document.getElementById(id);
    const button = node && (node.tagName === "BUTTON" ? node : node.querySelector("button"));
    if (!button || button.offsetParent === null || button.disabled) return;
    e.preventDefault();
    button.click();
  });
}
"""

BLUR_JS = "() => { if (document.activeElement) document.activeElement.blur(); }"

HELP = (
    "Which point is closer to the camera? Keys: **a** = A is closer, **b** = B is closer, "
    "**s** = can't tell, **u** = undo your last answer."
)
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&])")


def md(text: Any) -> str:
    """Text from the database or a user, escaped for Markdown (and so for HTML)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def read_auth_file(path: str | Path) -> dict[str, str]:
    """`name:password` per line (blank lines and `#` comments ignored)."""
    users: dict[str, str] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise Da2kError(f"cannot read the auth file {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, password = line.partition(":")
        if not sep or not name.strip() or not password:
            raise Da2kError(f"{path}:{number}: expected 'name:password'")
        users[name.strip()] = password
    if not users:
        raise Da2kError(f"the auth file {path} names no users ('name:password' per line)")
    return users


class AnnotatorBlocks(gr.Blocks):
    """`gr.Blocks` whose `launch()` defaults to the app's login check (when it has one)."""

    da2k_auth: Optional[Callable[[str, str], bool]] = None

    def launch(self, *args: Any, **kwargs: Any) -> Any:
        if self.da2k_auth is not None:
            kwargs.setdefault("auth", self.da2k_auth)
        return super().launch(*args, **kwargs)


class _Annotator:
    """The handlers, bound to one store and one configuration."""

    def __init__(
        self,
        store: Store,
        roots: list[Path],
        votes_per_pair: int,
        gold_rate: float,
        claim_ttl: float,
        users: Optional[dict[str, str]],
    ) -> None:
        self.store, self.roots, self.users = store, roots, users
        self.votes_per_pair, self.gold_rate, self.claim_ttl = votes_per_pair, gold_rate, claim_ttl
        self._waiting = (0.0, 0)

    def waiting(self) -> int:
        """Pairs waiting for answers, counted at most every 5 s (a count walks an index)."""
        at, n = self._waiting
        if time.monotonic() - at > 5.0:
            n = ann.waiting_count(self.store)
            self._waiting = (time.monotonic(), n)
        return n

    # identity -----------------------------------------------------------------------
    def who(self, typed: str, request: Optional[gr.Request]) -> str:
        if self.users is not None:
            name = getattr(request, "username", None)
            if not name:
                raise Da2kError("log in first")
            return name
        name = (typed or "").strip()
        if not name:
            raise Da2kError("type your name first")
        return name

    # annotate -----------------------------------------------------------------------
    def _image(self, root: str, path: str):
        return load_image(resolve_image(self.roots, root, path))

    def _view(self, name: str, shown: Optional[ann.Shown], note: str = "") -> tuple:
        for _ in range(20):
            if shown is None:
                text = f"Nothing left for **{md(name)}** right now. Thank you! {note}"
                return {"name": name, "pair": None}, None, None, None, text
            try:
                image = self._image(shown.image_root, shown.image_path)
                break
            except Da2kError as exc:
                log.warning("pair %s skipped: %s", shown.pair_id, exc)
                gr.Warning(f"pair {shown.pair_id} skipped: {exc}")
                ann.release(self.store, name)
                shown = ann.next_pair(self.store, name, ttl_seconds=self.claim_ttl, gold_rate=self.gold_rate)
        else:
            return {"name": name, "pair": None}, None, None, None, "Images are missing under the images root."
        full, _ = draw_points(image, {"A": shown.a, "B": shown.b})
        text = f"**{md(name)}** · pair {shown.pair_id} · {md(shown.scenario)} · {self.waiting()} pairs waiting. {note}"
        state = {"name": name, "pair": shown.pair_id}
        return state, full, crop_around(image, shown.a, "A"), crop_around(image, shown.b, "B"), text

    def start(self, typed: str, request: gr.Request) -> tuple:
        try:
            name = self.who(typed, request)
            shown = ann.next_pair(self.store, name, ttl_seconds=self.claim_ttl, gold_rate=self.gold_rate)
        except Da2kError as exc:
            return {"name": None, "pair": None}, None, None, None, md(exc), typed
        return (*self._view(name, shown), name)

    def answer(self, choice: str) -> Callable[..., tuple]:
        def handler(state: dict) -> tuple:
            name, pair = (state or {}).get("name"), (state or {}).get("pair")
            if not name or pair is None:
                return state, gr.skip(), gr.skip(), gr.skip(), "Type your name and press Start first."
            said = {"A": "A is closer", "B": "B is closer", "unsure": "can't tell"}[choice]
            try:
                ann.answer_pair(self.store, name, pair, choice, votes_per_pair=self.votes_per_pair)
                note = f"Saved '{said}' for pair {pair} (u undoes)."
            except Da2kError as exc:
                note = md(exc)
            shown = ann.next_pair(self.store, name, ttl_seconds=self.claim_ttl, gold_rate=self.gold_rate)
            return self._view(name, shown, note)

        return handler

    def undo(self, state: dict) -> tuple:
        name = (state or {}).get("name")
        if not name:
            return state, gr.skip(), gr.skip(), gr.skip(), "Type your name and press Start first."
        try:
            shown = ann.undo_last(self.store, name, ttl_seconds=self.claim_ttl)
        except Da2kError as exc:
            return state, gr.skip(), gr.skip(), gr.skip(), md(exc)
        if shown is None:
            return state, gr.skip(), gr.skip(), gr.skip(), "Nothing to undo."
        return self._view(name, shown, "Your last answer was taken back: answer again.")

    # review -------------------------------------------------------------------------
    def review_next(self, _state: dict) -> tuple:
        queue = ann.review_queue(self.store, limit=1)
        if not queue:
            return {"pair": None}, None, [], [], "No conflicts to review."
        item = queue[0]
        swapped = random.SystemRandom().random() < 0.5
        a, b = (item["point2"], item["point1"]) if swapped else (item["point1"], item["point2"])
        try:
            full, _ = draw_points(self._image(item["image_root"], item["image_path"]), {"A": a, "B": b})
        except Da2kError as exc:
            full = None
            gr.Warning(str(exc))
        shown = {"point1": "B" if swapped else "A", "point2": "A" if swapped else "B", "unsure": "can't tell"}
        votes = [[v["annotator"], shown[v["answer"]], round(v["seconds"] or 0.0, 1)] for v in item["votes"]]
        trail = [
            [str(e["at"])[:19], e["actor"], e["action"], str(e["detail"])]
            for e in ann.pair_trail(self.store, item["pair_id"])
        ]
        text = (
            f"Pair {item['pair_id']} · {md(item['scenario'])} · {md(item['image_path'])} · source {md(item['source'])}"
        )
        return {"pair": item["pair_id"], "swapped": swapped}, full, votes, trail, text

    def review_decide(self, shown_decision: str) -> Callable[..., tuple]:
        def handler(state: dict, typed: str, note: str, request: gr.Request) -> tuple:
            pair = (state or {}).get("pair")
            if pair is None:
                return (state, gr.skip(), gr.skip(), gr.skip(), "Load a conflict first.", note)
            try:
                reviewer = self.who(typed, request)
                decision = shown_decision
                if decision in ("A", "B"):
                    decision = "point1" if (decision == "A") != state["swapped"] else "point2"
                ann.decide_pair(self.store, pair, reviewer, decision, note or "")
            except Da2kError as exc:
                return (state, gr.skip(), gr.skip(), gr.skip(), md(exc), note)
            out = self.review_next(state)
            said = {"A": "A is closer", "B": "B is closer", "discard": "discarded"}[shown_decision]
            return (*out[:4], f"Pair {pair}: '{said}' saved. " + out[4], "")

        return handler

    # pick ---------------------------------------------------------------------------
    def pick_find(self, contains: str) -> Any:
        images = ann.find_images(self.store, (contains or "").strip(), limit=200)
        choices = [(f"{im['id']}: {im['path']}", im["id"]) for im in images]
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def _pick_view(self, state: dict) -> tuple:
        image = self._image(state["root"], state["path"])
        labels = {str(i + 1): p for i, p in enumerate(state["points"])}
        full, scale = draw_points(image, labels)
        state["scale"] = scale
        points = ", ".join(f"{k}: (row {r}, col {c})" for k, (r, c) in labels.items()) or "none yet"
        return state, full, f"Click two points. Picked: {points}."

    def pick_image(self, image_id: Optional[int]) -> tuple:
        im = ann.image_info(self.store, int(image_id)) if image_id else None
        if im is None:
            return {}, None, "Choose an image."
        state = {
            "image": im["id"],
            "root": im["root"],
            "path": im["path"],
            "height": im["height"],
            "width": im["width"],
            "points": [],
        }
        try:
            return self._pick_view(state)
        except Da2kError as exc:
            return {}, None, md(exc)

    def pick_click(self, state: dict, evt: gr.SelectData) -> tuple:
        if not state or "image" not in state:
            return state, gr.skip(), "Choose an image."
        x, y = evt.index[0], evt.index[1]
        row = min(state["height"] - 1, max(0, int(y / state["scale"])))
        col = min(state["width"] - 1, max(0, int(x / state["scale"])))
        state["points"] = ([] if len(state["points"]) >= 2 else state["points"]) + [(row, col)]
        return self._pick_view(state)

    def pick_add(self, state: dict, typed: str, request: gr.Request) -> tuple:
        if not state or len(state.get("points", [])) != 2:
            return state, gr.skip(), "Click two points first."
        try:
            author = self.who(typed, request)
            pair_id = ann.add_manual_pair(self.store, state["image"], state["points"][0], state["points"][1], author)
        except Da2kError as exc:
            return state, gr.skip(), md(exc)
        state["points"] = []
        out = self._pick_view(state)
        return out[0], out[1], f"Added pair {pair_id} (manual, waiting for answers). " + out[2]

    # stats --------------------------------------------------------------------------
    def stats(self) -> tuple:
        data = ann.annotation_stats(self.store)
        statuses = ["pending", "auto_agreed", "needs_human", "resolved", "discarded", "in_review"]
        progress = [[scenario] + [row.get(k, 0) for k in statuses] for scenario, row in data["progress"].items()]
        people = [
            [
                name,
                e["answers"],
                e["unsure"],
                None if e["answers_per_hour"] is None else round(e["answers_per_hour"], 1),
                e["gold"],
                None if e["gold_accuracy"] is None else round(e["gold_accuracy"], 3),
            ]
            for name, e in data["annotators"].items()
        ]
        cohen = [
            [r["a"], r["b"], r["pairs"], None if r["kappa"] is None else round(r["kappa"], 3)]
            for r in data["cohen_kappa"]
        ]
        fleiss = data["fleiss_kappa"]
        text = (
            "Fleiss' kappa over pairs with the same number of answers: "
            + ("undefined (too few answers, or all alike)" if fleiss is None else f"**{fleiss:.3f}**")
            + ". `in_review`: conflicting answers waiting for a reviewer (counted in `discarded` too)."
        )
        return progress, people, cohen, text, _progress_figure(data, statuses), _hourly_figure(data)


def _progress_figure(data: dict, statuses: list[str]) -> Figure:
    names = list(data["progress"])
    fig = Figure(figsize=(7, 1.6 + 0.45 * max(1, len(names))), layout="constrained")
    ax = fig.add_subplot()
    bottom = [0] * len(names)
    for status in statuses[:5]:
        values = [data["progress"][n].get(status, 0) for n in names]
        ax.barh(names, values, left=bottom, label=status)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xlabel("pairs")
    ax.set_title("Pairs per scenario and status")
    if names:
        fig.legend(loc="outside lower center", fontsize="small", ncols=5, frameon=False)
    return fig


def _hourly_figure(data: dict) -> Figure:
    fig = Figure(figsize=(7, 2.8), layout="constrained")
    ax = fig.add_subplot()
    hours = list(data["answers_by_hour"])
    ax.bar(range(len(hours)), list(data["answers_by_hour"].values()), color="tab:blue")
    ax.set_xticks(range(len(hours)), [h[5:] for h in hours], rotation=45, ha="right", fontsize="small")
    ax.set_ylabel("answers")
    ax.set_title("Answers per hour (UTC)")
    return fig


def build_app(
    db_url: str | Path,
    *,
    images_root: str | Path | None = None,
    votes_per_pair: int = 3,
    auth: str | Path | dict[str, str] | None = None,
    gold_rate: float = 0.1,
    claim_ttl: float = 600.0,
) -> gr.Blocks:
    """The annotation app over the store at `db_url` (a path or SQLAlchemy URL).

    Images are read only from under `images_root` (default: the folders recorded in the
    database). `auth` is a `name:password` file or a {name: password} dict; with it, people
    log in and their login is their annotator name. A pair is settled after
    `votes_per_pair` answers; `gold_rate` of the questions are gold; a claim lasts `claim_ttl`
    seconds. Launch the result with `.launch(server_name="127.0.0.1", ...)`.
    """
    if votes_per_pair < 1:
        raise Da2kError("--votes-per-pair must be at least 1")
    if not 0.0 <= gold_rate <= 1.0:
        raise Da2kError("the gold rate must be between 0 and 1")
    store = Store(db_url, create=False)
    ann.ensure_schema(store)
    if images_root is not None:
        root = Path(images_root).expanduser().resolve()
        if not root.is_dir():
            raise Da2kError(f"--images-root {images_root} is not a folder")
        roots = [root]
    else:
        roots = [Path(r).resolve() for r in ann.image_roots(store)]
    users = read_auth_file(auth) if isinstance(auth, (str, Path)) else (dict(auth) if auth else None)
    h = _Annotator(store, roots, votes_per_pair, gold_rate, claim_ttl, users)
    private = {"api_visibility": "private"}

    # delete_cache: the images drawn for the browser are files in Gradio's cache; drop them
    # after an hour so a long annotation session does not fill the disk.
    with AnnotatorBlocks(title="da2k annotate", analytics_enabled=False, delete_cache=(600, 3600)) as app:
        gr.Markdown("## da2k: which point is closer?")
        with gr.Row():
            name = gr.Textbox(
                label="Your name",
                placeholder="annotator name",
                max_length=128,
                scale=3,
                visible=users is None,
                elem_id="da2k-name",
            )
            start = gr.Button("Start", variant="primary", scale=1, visible=users is None, elem_id="da2k-start")
        remembered = gr.BrowserState("", storage_key="da2k-annotator")
        with gr.Tabs():
            with gr.Tab("Annotate", id="annotate"):
                info = gr.Markdown(HELP, elem_id="da2k-info")
                state = gr.State({"name": None, "pair": None})
                with gr.Row():
                    full = gr.Image(
                        label="Image",
                        type="pil",
                        interactive=False,
                        scale=3,
                        elem_id="da2k-full",
                        format="jpeg",
                        height=560,
                        buttons=["fullscreen"],
                    )
                    with gr.Column(scale=1):
                        crop_a = gr.Image(
                            label="A (zoom)",
                            type="pil",
                            interactive=False,
                            elem_id="da2k-crop-a",
                            format="jpeg",
                            buttons=[],
                        )
                        crop_b = gr.Image(
                            label="B (zoom)",
                            type="pil",
                            interactive=False,
                            elem_id="da2k-crop-b",
                            format="jpeg",
                            buttons=[],
                        )
                with gr.Row():
                    buttons = {
                        "A": gr.Button("A is closer  [a]", elem_id="da2k-a"),
                        "B": gr.Button("B is closer  [b]", elem_id="da2k-b"),
                        "unsure": gr.Button("Can't tell  [s]", elem_id="da2k-s"),
                    }
                    undo = gr.Button("Undo  [u]", variant="secondary", elem_id="da2k-u")
                gr.Markdown(HELP)
            with gr.Tab("Review", id="review"):
                r_info = gr.Markdown("Pairs whose answers conflict. Load one, then decide or discard.")
                r_state = gr.State({"pair": None})
                r_load = gr.Button("Load next conflict", elem_id="da2k-review-load")
                r_image = gr.Image(label="Conflict", type="pil", interactive=False, format="jpeg")
                r_votes = gr.Dataframe(
                    headers=["annotator", "answer (as A/B here)", "seconds"], interactive=False, label="Votes"
                )
                r_note = gr.Textbox(label="Note (kept in the audit trail)", max_length=1000)
                with gr.Row():
                    r_buttons = {
                        "A": gr.Button("A is closer", elem_id="da2k-review-a"),
                        "B": gr.Button("B is closer", elem_id="da2k-review-b"),
                        "discard": gr.Button("Discard", variant="stop", elem_id="da2k-review-discard"),
                    }
                r_trail = gr.Dataframe(
                    headers=["at (UTC)", "actor", "action", "detail"], interactive=False, label="Audit trail", wrap=True
                )
            with gr.Tab("Pick", id="pick"):
                p_info = gr.Markdown("Find an image, click two points on it, then add the pair.")
                p_state = gr.State({})
                with gr.Row():
                    p_filter = gr.Textbox(label="Path contains", scale=3)
                    p_find = gr.Button("Find", scale=1)
                p_choice = gr.Dropdown(label="Image", choices=[], interactive=True)
                p_image = gr.Image(
                    label="Click two points", type="pil", interactive=False, format="jpeg", elem_id="da2k-pick-image"
                )
                p_add = gr.Button("Add pair", variant="primary", elem_id="da2k-pick-add")
            with gr.Tab("Stats", id="stats"):
                s_refresh = gr.Button("Refresh", elem_id="da2k-stats-refresh")
                s_text = gr.Markdown()
                s_progress = gr.Dataframe(
                    headers=["scenario", "pending", "auto_agreed", "needs_human", "resolved", "discarded", "in_review"],
                    interactive=False,
                    label="Progress",
                )
                s_people = gr.Dataframe(
                    headers=["annotator", "answers", "can't tell", "answers/hour", "gold answers", "gold accuracy"],
                    interactive=False,
                    label="Annotators",
                )
                s_cohen = gr.Dataframe(
                    headers=["annotator", "annotator", "shared pairs", "Cohen's kappa"],
                    interactive=False,
                    label="Agreement between annotators",
                )
                s_plot1 = gr.Plot(label="Progress")
                s_plot2 = gr.Plot(label="Answers per hour")

        view = [state, full, crop_a, crop_b, info]
        # After Start, leave the name box so the a/b/s/u keys answer instead of typing.
        for trigger in (start.click, name.submit):
            trigger(h.start, [name], view + [remembered], **private).then(fn=None, js=BLUR_JS)
        for choice, button in buttons.items():
            button.click(h.answer(choice), [state], view, trigger_mode="once", **private)
        undo.click(h.undo, [state], view, trigger_mode="once", **private)

        def restore(saved: str, request: gr.Request) -> tuple:
            if users is not None or saved:
                return h.start(saved or "", request)
            return (*[gr.skip()] * 4, HELP, gr.skip())

        app.load(fn=None, js=KEYS_JS)
        app.load(restore, [remembered], view + [name], **private)

        r_view = [r_state, r_image, r_votes, r_trail, r_info]
        r_load.click(h.review_next, [r_state], r_view, **private)
        for decision, button in r_buttons.items():
            button.click(h.review_decide(decision), [r_state, name, r_note], r_view + [r_note], **private)

        p_find.click(h.pick_find, [p_filter], [p_choice], **private)
        p_filter.submit(h.pick_find, [p_filter], [p_choice], **private)
        p_choice.change(h.pick_image, [p_choice], [p_state, p_image, p_info], **private)
        p_image.select(h.pick_click, [p_state], [p_state, p_image, p_info], **private)
        p_add.click(h.pick_add, [p_state, name], [p_state, p_image, p_info], **private)

        s_refresh.click(h.stats, None, [s_progress, s_people, s_cohen, s_text, s_plot1, s_plot2], **private)

    if users is not None:
        app.da2k_auth = lambda user, password: (
            user in users and hmac.compare_digest(users[user].encode(), password.encode())
        )
    app.queue(default_concurrency_limit=8)
    return app
