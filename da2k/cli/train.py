"""`da2k train teacher|student|metric` and `da2k pseudo-label`: thin commands over
`da2k.models.train` (with `da2k.training`'s benchmark evaluator passed in for `--eval`). Run them as they are for one process, or under torchrun for DDP:

    torchrun --nproc_per_node 8 --no-python da2k train teacher --data rgbd:synthetic/ --out runs/teacher
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from typing import Any

import click

from da2k.cli.errors import user_errors
from da2k.cli.options import compile_option, device_option, precision_option, workers_option

ENCODERS = ("vits", "vitb", "vitl", "vitg", "vit-tiny")


def _setup_logging() -> None:
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {rank}] %(name)s: %(message)s",
    )


PATCH = 14  # the ViT patch size: network inputs are multiples of it


def _multiple_of_patch(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value % PATCH:
        lower, upper = value // PATCH * PATCH, (value // PATCH + 1) * PATCH
        raise click.BadParameter(f"{value} is not a multiple of {PATCH}: use {max(lower, PATCH)} or {upper}")
    return value


def _number(name: str, kind: click.ParamType, default: Any, help: str | None = None, **extra: Any) -> Callable:
    """A numeric option whose range click checks before anything runs (a usage error, exit 2)."""
    return click.option(name, type=kind, default=default, show_default=default is not None, help=help, **extra)


POSITIVE, COUNT = click.IntRange(1), click.IntRange(0)


def _optimisation_options(defaults: dict[str, Any]) -> Callable:
    """The options every training stage shares (engine config)."""

    def decorate(fn: Callable) -> Callable:
        options = [
            click.option(
                "--out",
                "out_dir",
                required=True,
                type=click.Path(file_okay=False),
                help="Run folder: model.pt, last.pt, log.csv.",
            ),
            _number("--iters", POSITIVE, defaults["iters"], "Optimizer steps."),
            _number("--batch-size", POSITIVE, defaults["batch_size"], "Images per process per micro-step."),
            _number("--accum", POSITIVE, 1, "Micro-steps accumulated per optimizer step."),
            _number(
                "--size", click.IntRange(14), 518, "Square training crop (multiple of 14).", callback=_multiple_of_patch
            ),
            _number("--lr", click.FloatRange(0, min_open=True), 5e-6, "Encoder learning rate."),
            _number("--decoder-lr-mult", click.FloatRange(0), 10.0, "Decoder lr = lr x this."),
            _number("--weight-decay", click.FloatRange(0), 0.01),
            click.option(
                "--schedule",
                type=click.Choice(["poly", "linear"]),
                default="poly",
                show_default=True,
                help="poly: (1 - t/T)^0.9.",
            ),
            _number("--warmup", COUNT, 0, "Linear warm-up steps."),
            click.option(
                "--precision",
                type=click.Choice(["fp32", "bf16", "fp16"]),
                default="fp32",
                show_default=True,
                help="Autocast dtype.",
            ),
            click.option(
                "--device", default="auto", show_default=True, help="auto (cuda:LOCAL_RANK if present), cpu or cuda."
            ),
            click.option(
                "--compile",
                is_flag=True,
                help="torch.compile the training step (one graph for the fixed --size; compile time is logged).",
            ),
            click.option(
                "--init", default="dinov2", show_default=True, help="dinov2, random, or a Depth Anything checkpoint."
            ),
            click.option(
                "--dinov2-weights",
                type=click.Path(dir_okay=False),
                help="Local dinov2_<enc>14_pretrain.pth (else downloaded once).",
            ),
            _number("--workers", COUNT, 2, "DataLoader workers per process (0: load in the main process)."),
            _number("--seed", click.INT, 0),
            _number("--log-every", POSITIVE, 20),
            _number("--save-every", POSITIVE, 1000, "Checkpoint (last.pt, model.pt) period in steps."),
            _number(
                "--stop-after", POSITIVE, None, "Stop this run after N steps (resume later with the same command)."
            ),
            click.option(
                "--resume/--no-resume", default=True, show_default=True, help="Continue from OUT/last.pt if present."
            ),
        ]
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _config(kw: dict[str, Any], stage: str):
    from da2k.models.train.engine import TrainConfig

    names = ("out_dir", "iters", "batch_size", "accum", "lr", "decoder_lr_mult", "weight_decay", "schedule", "warmup",
             "precision", "compile", "device", "workers", "seed", "log_every", "save_every", "stop_after", "resume")  # fmt: skip
    cfg = TrainConfig(**{n: kw.pop(n) for n in names})
    cfg.eval_every = kw.pop("eval_every", 0) or 0
    cfg.meta = {"stage": stage}
    return cfg


def _eval_options(fn: Callable) -> Callable:
    fn = click.option(
        "--eval-every", type=click.IntRange(0), default=0, help="Evaluation period in steps (0: only at the end)."
    )(fn)
    return click.option(
        "--eval", "eval_bench", type=click.Path(exists=True), help="DA-2K-format benchmark scored during training."
    )(fn)


def _evaluator(bench: str | None, encoder: str, size: int, device: str):
    """The DA-2K-format benchmark scorer training calls with each checkpoint (rank 0 only)."""
    if not bench or int(os.environ.get("RANK", "0")) != 0:
        return None
    from da2k.training import benchmark_evaluator

    return benchmark_evaluator(bench, encoder, size, device)


def _training_command(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _setup_logging()
        return fn(*args, **kwargs)

    return user_errors(wrapper)


@click.group()
def train() -> None:
    """Train Depth Anything V2-style models (teacher -> pseudo labels -> student; metric).

    \b
    da2k train teacher --data rgbd:synthetic/ --encoder vitg --out runs/teacher
    da2k pseudo-label --teacher runs/teacher/model.pt --encoder vitg --images photos/ --out labels/
    da2k train student --pseudo labels/ --encoder vits --out runs/student
    da2k train metric --data hypersim:Hypersim/ --max-depth 20 --init runs/student/model.pt --encoder vits --out runs/metric
    """


@train.command()
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    help="Labelled RGB-D: rgbd:DIR (or DIR), hypersim:DIR, vkitti2:DIR; repeat to concatenate.",
)
@click.option("--encoder", type=click.Choice(ENCODERS), default="vitg", show_default=True)
@click.option(
    "--max-depth", type=click.FloatRange(0, min_open=True), help="Mask pixels farther than this (depth labels)."
)
@_eval_options
@_optimisation_options({"iters": 160_000, "batch_size": 4})
@_training_command
def teacher(data, encoder, max_depth, eval_bench, **kw) -> None:
    """Teacher on labelled (synthetic) RGB-D: L_ssi + 2 L_gm on disparity."""
    from da2k.models.train.stages import train_teacher

    init, dinov2_weights, size = kw.pop("init"), kw.pop("dinov2_weights"), kw.pop("size")
    cfg = _config(kw, "teacher")
    path = train_teacher(
        data,
        encoder,
        cfg,
        init=init,
        dinov2_weights=dinov2_weights,
        size=size,
        max_depth=max_depth,
        evaluate=_evaluator(eval_bench, encoder, size, cfg.device),
    )
    click.echo(f"teacher weights: {path}")


@train.command()
@click.option(
    "--pseudo", "pseudo", multiple=True, required=True, help="Folder written by `da2k pseudo-label` (repeatable)."
)
@click.option("--encoder", type=click.Choice(ENCODERS), default="vits", show_default=True)
@click.option(
    "--trim",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="Fraction of largest per-pixel losses ignored per image.",
)
@_eval_options
@_optimisation_options({"iters": 480_000, "batch_size": 4})
@_training_command
def student(pseudo, encoder, trim, eval_bench, **kw) -> None:
    """Student on pseudo-labelled images only (top 10 % per-pixel losses ignored)."""
    from da2k.models.train.stages import train_student

    init, dinov2_weights, size = kw.pop("init"), kw.pop("dinov2_weights"), kw.pop("size")
    cfg = _config(kw, "student")
    path = train_student(
        pseudo,
        encoder,
        cfg,
        init=init,
        dinov2_weights=dinov2_weights,
        size=size,
        trim=trim,
        evaluate=_evaluator(eval_bench, encoder, size, cfg.device),
    )
    click.echo(f"student weights: {path}")


@train.command()
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    help="Metric RGB-D: hypersim:DIR, vkitti2:DIR, rgbd:DIR (kind depth).",
)
@click.option("--encoder", type=click.Choice(("vits", "vitb", "vitl")), default="vitl", show_default=True)
@click.option(
    "--max-depth",
    type=click.FloatRange(0, min_open=True),
    default=20.0,
    show_default=True,
    help="20 (Hypersim, indoor) or 80 (Virtual KITTI 2, outdoor).",
)
@click.option("--min-depth", type=click.FloatRange(0, min_open=True), default=1e-3, show_default=True)
@_optimisation_options({"iters": 40_000, "batch_size": 2})
@_training_command
def metric(data, encoder, max_depth, min_depth, **kw) -> None:
    """Metric fine-tuning with SiLog; --init a relative checkpoint to start from its encoder."""
    from da2k.models.train.stages import train_metric

    init, dinov2_weights, size = kw.pop("init"), kw.pop("dinov2_weights"), kw.pop("size")
    cfg = _config(kw, "metric")
    path = train_metric(
        data,
        encoder,
        cfg,
        max_depth=max_depth,
        min_depth=min_depth,
        init=init,
        dinov2_weights=dinov2_weights,
        size=size,
    )
    click.echo(f"metric weights: {path}")


@click.command("pseudo-label")
@click.option("--teacher", required=True, type=click.Path(dir_okay=False), help="Teacher checkpoint (model.pt).")
@click.option(
    "--encoder", type=click.Choice(ENCODERS), default="vitg", show_default=True, help="The teacher's architecture."
)
@click.option(
    "--images", required=True, type=click.Path(file_okay=False), help="Folder of unlabeled images (recursive)."
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Label folder (labels/, parts/, manifest.json).",
)
@click.option(
    "--input-size",
    type=click.IntRange(14),
    help="Network short side (default: the variant's).",
)
@device_option
@precision_option()
@compile_option
@workers_option("Decoding threads.")
@_training_command
def pseudo_label(teacher, encoder, images, out_dir, input_size, device, precision, compile_network, workers) -> None:
    """Label unlabeled images with a teacher (rank-sharded under torchrun, resumable).

    \b
    torchrun --nproc_per_node 8 --no-python da2k pseudo-label --teacher t.pt --images photos/ --out labels/
    """
    from da2k.models.train.pseudo_label import pseudo_label as run

    manifest = run(
        teacher,
        images,
        out_dir,
        encoder=encoder,
        input_size=input_size,
        device=device,
        precision=precision,
        workers=workers,
        compile=compile_network,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(f"manifest: {manifest}")
    body = json.loads(manifest.read_text())
    if body.get("failed"):
        raise click.ClickException(
            f"{len(body['failed'])} of {len(body['failed']) + len(body['items'])} image(s) could not be labelled "
            f"(e.g. {body['failed'][0]}; see the warnings above); the others are labelled: fix or remove them and rerun"
        )
