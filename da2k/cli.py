"""The `da2k` command line: thin click commands over library functions.

Heavy imports (torch, the models) happen inside the commands so `da2k --help` stays instant.
Library errors meant for users (`Da2kError`, `da2k.models.ModelError`) become one-line
`click.ClickException`s; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import click

from da2k import __version__
from da2k.errors import Da2kError


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's user-facing errors into click errors (message, exit 1, no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from da2k.models.errors import ModelError

        try:
            return fn(*args, **kwargs)
        except (Da2kError, ModelError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="da2k")
def main() -> None:
    """Score depth models on DA-2K, build DA-2K-style benchmarks, publish leaderboards.

    \b
    da2k predict IMAGES... --model vits --out depth/   depth maps for your images
    """


def _register() -> None:
    from da2k.cli_predict import predict

    main.add_command(predict)
    from da2k.cli_evaluate import compare, evaluate, validate

    for command in (evaluate, validate, compare):
        main.add_command(command)
    from da2k.cli_leaderboard import leaderboard

    main.add_command(leaderboard)
    from da2k import cli_mine

    for command in (cli_mine.mine, cli_mine.stats, cli_mine.export, cli_mine.import_benchmark, cli_mine.store):
        main.add_command(command)
    from da2k.cli_annotate import annotate

    main.add_command(annotate)
    from da2k.cli_train import pseudo_label, train

    for command in (train, pseudo_label):
        main.add_command(command)


_register()
