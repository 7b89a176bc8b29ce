"""The `da2k` command line: thin click commands over library functions, one module per group.

Heavy imports (torch, the models) happen inside the commands so `da2k --help` stays instant.
Library errors meant for users become one-line errors (`da2k.cli.errors.user_errors`); exit
statuses: 1 failed work, 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import click

from da2k import __version__
from da2k.cli.annotate import annotate
from da2k.cli.errors import Da2kGroup
from da2k.cli.evaluate import compare, evaluate, validate
from da2k.cli.leaderboard import leaderboard
from da2k.cli.mine import mine
from da2k.cli.predict import predict
from da2k.cli.store import export, import_benchmark, stats, store
from da2k.cli.train import pseudo_label, train


@click.group(cls=Da2kGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="da2k")
def main() -> None:
    """Score depth models on DA-2K, build DA-2K-style benchmarks, publish leaderboards.

    \b
    da2k predict IMAGES... --model vits --out depth/   depth maps for your images
    """


for _command in (
    predict,
    evaluate,
    validate,
    compare,
    leaderboard,
    mine,
    stats,
    export,
    import_benchmark,
    store,
    annotate,
    train,
    pseudo_label,
):
    main.add_command(_command)
