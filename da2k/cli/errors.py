"""One error path for every command.

Exit statuses: 0 done; 1 the work failed (a user error, printed as one line, no traceback);
2 bad usage (click's usage errors: unknown option, value out of range); 130 interrupted
(Ctrl-C). Library errors meant for users (`Da2kError`, `da2k.models.ModelError`), file-system
errors (a full disk, a missing permission, a name too long) and database errors (locked,
read-only) become one line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import functools
import sys
from typing import Any, Callable

import click

from da2k.errors import Da2kError

EXIT_INTERRUPTED = 130


def one_line(text: str) -> str:
    """`text` on one line (a message that spans lines would look like several errors)."""
    return "; ".join(line.strip() for line in str(text).strip().splitlines() if line.strip()) or "failed"


def _os_error_message(exc: OSError) -> str:
    what = exc.strerror or errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    return f"{what}: {' -> '.join(names)}" if names else what


def _database_error(exc: Exception) -> str | None:
    """The one-line form of a database driver's error (locked, read-only, disk I/O), or None."""
    if not type(exc).__module__.startswith("sqlalchemy"):
        return None
    from sqlalchemy.exc import OperationalError

    if not isinstance(exc, OperationalError):
        return None
    return f"database error: {one_line(str(exc.orig or exc))}"


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can fix into `click.ClickException`s (one line, exit status 1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from da2k.models.errors import ModelError

        try:
            return fn(*args, **kwargs)
        except (Da2kError, ModelError) as exc:  # one line per problem, as the library wrote it
            raise click.ClickException(str(exc).strip() or type(exc).__name__) from None
        except OSError as exc:
            if exc.errno is None:
                raise
            raise click.ClickException(_os_error_message(exc)) from None
        except Exception as exc:
            message = _database_error(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None

    return wrapper


class _Interruptible:
    """Exit statuses and messages of the module docstring: a usage error is one line naming the
    help to read (click's default adds the usage text), Ctrl-C is exit status 130 (click's: 1)."""

    def main(
        self,
        args: Any = None,
        prog_name: Any = None,
        complete_var: Any = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)  # type: ignore[misc]
        for stream in (sys.stdout, sys.stderr):
            # A name from a file (an annotation key with a lone surrogate) must print, not crash.
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(errors="backslashreplace")
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)  # type: ignore[misc]
        except click.UsageError as exc:
            hint = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
            click.echo(f"Error: {one_line(exc.format_message())}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None


class Da2kGroup(_Interruptible, click.Group):
    """The top-level `da2k` group (see `_Interruptible`)."""


class Da2kCommand(_Interruptible, click.Command):
    """A stand-alone command (`python -m da2k.synthetic`) with the same exit statuses."""
