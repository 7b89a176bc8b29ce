"""`da2k annotate`: the Gradio app where people settle the pairs the experts disagree on."""

from __future__ import annotations

import socket

import click

from da2k.cli.errors import user_errors
from da2k.cli.options import db_option
from da2k.errors import Da2kError


def _check_port(host: str, port: int) -> None:
    """Refuse a port something else listens on, before the app is built (Gradio would fail
    later, with a traceback)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Da2kError(f"--host {host}: {exc.strerror or exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server does
        try:
            probe.bind(address)
        except OSError as exc:
            raise Da2kError(
                f"cannot listen on {host}:{port} ({exc.strerror}): another program uses the port; pass --port N"
            ) from None


@click.command()
@db_option
@click.option(
    "--images-root",
    type=click.Path(exists=True, file_okay=False),
    help="Serve images only from under this folder (default: the folders recorded in the database).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 exposes the app to your network (use --auth then).",
)
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--votes-per-pair",
    default=3,
    show_default=True,
    type=click.IntRange(1),
    help="Answers per pair; a strict majority resolves it, anything else goes to review.",
)
@click.option(
    "--gold-rate",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of questions that are gold (pairs with a known answer).",
)
@click.option(
    "--claim-ttl",
    default=600,
    show_default=True,
    type=click.IntRange(10),
    help="Seconds a shown pair stays reserved for its annotator.",
)
@click.option(
    "--auth",
    "auth_file",
    type=click.Path(exists=True, dir_okay=False),
    help="File of 'name:password' lines: people log in and their login is their annotator name; "
    "'+name:password' marks a reviewer.",
)
@click.option(
    "--reviewers",
    "reviewers_file",
    type=click.Path(exists=True, dir_okay=False),
    help="File of names (one a line) who may settle conflicts in Review; with --auth, nobody else may.",
)
@user_errors
def annotate(db, images_root, host, port, votes_per_pair, gold_rate, claim_ttl, auth_file, reviewers_file):
    """Start the annotation app (Annotate, Review, Pick and Stats tabs).

    \b
    da2k annotate --db da2k.db --images-root photos/      then open http://127.0.0.1:7860
    da2k annotate --host 0.0.0.0 --auth team.txt --reviewers leads.txt
    """
    from da2k.store import check_database

    check_database(db, create=False)
    _check_port(host, port)
    try:
        from da2k.annotator_app import build_app
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "gradio":
            raise Da2kError("the annotation app needs gradio: pip install 'da2k[annotate]'") from None
        raise
    if host not in ("127.0.0.1", "localhost", "::1") and not auth_file:
        click.echo(
            f"warning: listening on {host} without --auth: anyone who can reach it can annotate and review", err=True
        )
    app = build_app(
        db,
        images_root=images_root,
        votes_per_pair=votes_per_pair,
        auth=auth_file,
        reviewers=reviewers_file,
        gold_rate=gold_rate,
        claim_ttl=float(claim_ttl),
    )
    app.launch(server_name=host, server_port=port, show_error=False, quiet=False)
