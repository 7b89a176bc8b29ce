"""Options shared by several commands, declared once so their names, defaults and help agree."""

from __future__ import annotations

from typing import Callable

import click

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DB_HELP = "Annotation database: a SQLite file path or any SQLAlchemy URL (postgresql+psycopg://...)."


def db_option(fn: Callable) -> Callable:
    return click.option("--db", default="da2k.db", show_default=True, help=DB_HELP)(fn)


def device_option(fn: Callable) -> Callable:
    return click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")(fn)


def precision_option(default: str = "auto", help: str | None = None) -> Callable[[Callable], Callable]:
    return click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default=default,
        show_default=True,
        help=help or "auto: bf16 only on CPUs with native bf16, fp16 on CUDA, else fp32.",
    )


def compile_option(fn: Callable) -> Callable:
    return click.option(
        "--compile",
        "compile_network",
        is_flag=True,
        help=(
            "torch.compile our network (vits, vitl, ...): one graph per network input size, built on "
            "its first image (minutes on a small CPU), reused after; compile time is reported apart."
        ),
    )(fn)


def weights_option(fn: Callable) -> Callable:
    return click.option(
        "--weights",
        type=click.Path(),
        help="Checkpoint file or folder for our models (default: $DA2K_WEIGHTS_DIR, then the hub).",
    )(fn)


def input_size_option(help: str) -> Callable[[Callable], Callable]:
    return click.option("--input-size", type=click.IntRange(min=14), help=help)


def workers_option(help: str = "Threads decoding and resizing ahead of the model.") -> Callable[[Callable], Callable]:
    return click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help=help)


def model_options(input_size_help: str) -> Callable[[Callable], Callable]:
    """`--weights`, `--device`, `--precision`, `--input-size`: how a model is loaded and run."""

    def decorate(fn: Callable) -> Callable:
        for option in (weights_option, device_option, precision_option(), input_size_option(input_size_help)):
            fn = option(fn)
        return fn

    return decorate
