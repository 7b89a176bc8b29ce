"""One error path for every command: library errors meant for users become one line and exit 1."""

from __future__ import annotations

import functools
from typing import Any, Callable

import click

from da2k.errors import Da2kError


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's user-facing errors (`Da2kError`, `da2k.models.ModelError`) into
    `click.ClickException`s: the message, exit status 1, no traceback. Anything else is a bug
    and keeps its traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from da2k.models.errors import ModelError

        try:
            return fn(*args, **kwargs)
        except (Da2kError, ModelError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper
