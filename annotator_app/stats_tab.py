"""The Stats tab: progress per scenario and status, annotators, agreement, unavailable images.

Charts use the Okabe-Ito palette (distinct with every common colour-vision deficiency) and
label their bars, so no reading depends on telling two hues apart.
"""

from __future__ import annotations

import gradio as gr
from matplotlib.figure import Figure

from da2k.annotator_app.context import Context
from da2k.store import annotate as ann

STATUSES = ["pending", "auto_agreed", "needs_human", "resolved", "discarded", "in_review"]
OKABE_ITO = {
    "pending": "#999999",
    "auto_agreed": "#56B4E9",
    "needs_human": "#E69F00",
    "resolved": "#009E73",
    "discarded": "#D55E00",
}
HATCHES = {"pending": "", "auto_agreed": "//", "needs_human": "", "resolved": "..", "discarded": "xx"}


def _round(value, digits: int):
    return None if value is None else round(value, digits)


def _progress_figure(data: dict) -> Figure:
    names = list(data["progress"])
    fig = Figure(figsize=(7, 1.6 + 0.45 * max(1, len(names))), layout="constrained")
    ax = fig.add_subplot()
    bottom = [0] * len(names)
    for status in STATUSES[:5]:
        values = [data["progress"][n].get(status, 0) for n in names]
        ax.barh(
            names, values, left=bottom, label=status, color=OKABE_ITO[status], hatch=HATCHES[status], edgecolor="white"
        )
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
    ax.bar(range(len(hours)), list(data["answers_by_hour"].values()), color="#0072B2")
    ax.set_xticks(range(len(hours)), [h[5:] for h in hours], rotation=45, ha="right", fontsize="small")
    ax.set_ylabel("answers")
    ax.set_title("Answers per hour (UTC)")
    return fig


class StatsTab:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def refresh(self) -> tuple:
        data = ann.annotation_stats(self.ctx.store)
        progress = [[scenario] + [row.get(k, 0) for k in STATUSES] for scenario, row in data["progress"].items()]
        people = [
            [
                name,
                e["answers"],
                e["unsure"],
                e["skips"],
                _round(e["answers_per_hour"], 1),
                e["gold"],
                _round(e["gold_accuracy"], 3),
            ]
            for name, e in data["annotators"].items()
        ]
        cohen = [[r["a"], r["b"], r["pairs"], _round(r["kappa"], 3)] for r in data["cohen_kappa"]]
        missing = [
            [im["path"], im["unavailable"], str(im["since"])[:19]] for im in ann.unavailable_images(self.ctx.store)
        ]
        fleiss = data["fleiss_kappa"]
        minutes = ann.MIN_ACTIVE_SECONDS / 60
        text = (
            "Fleiss' kappa over pairs with the same number of answers: "
            + ("undefined (too few answers, or all alike)" if fleiss is None else f"**{fleiss:.3f}**")
            + ". `in_review`: conflicting answers waiting for a reviewer (counted in `discarded` too). "
            + f"Answers/hour appear after {minutes:.0f} minutes of active time. "
            + f"Images that cannot be shown: **{len(missing)}** (their pairs are out of the queue)."
        )
        return progress, people, cohen, missing, text, _progress_figure(data), _hourly_figure(data)

    def build(self) -> None:
        refresh = gr.Button("Refresh", elem_id="da2k-stats-refresh")
        text = gr.Markdown()
        progress = gr.Dataframe(headers=["scenario", *STATUSES], interactive=False, label="Progress")
        people = gr.Dataframe(
            headers=["annotator", "answers", "can't tell", "skips", "answers/hour", "gold answers", "gold accuracy"],
            interactive=False,
            label="Annotators",
        )
        cohen = gr.Dataframe(
            headers=["annotator", "annotator", "shared pairs", "Cohen's kappa"],
            interactive=False,
            label="Agreement between annotators",
        )
        missing = gr.Dataframe(
            headers=["image", "why", "since (UTC)"], interactive=False, label="Images that cannot be shown"
        )
        plot1 = gr.Plot(label="Progress")
        plot2 = gr.Plot(label="Answers per hour")
        outputs = [progress, people, cohen, missing, text, plot1, plot2]
        refresh.click(self.refresh, None, outputs, api_visibility="private")
