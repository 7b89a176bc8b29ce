"""User-facing errors: the CLI prints their message as one line and exits non-zero."""

import json
import sys


class Da2kError(Exception):
    """A problem the user can fix (bad input, missing data, wrong flag); never a bug."""


JSON_ERRORS = (UnicodeDecodeError, ValueError, RecursionError)
"""What `json.loads` raises on bad input (JSONDecodeError is a ValueError; so is an integer with
more digits than Python converts, 4,300 by default; deep nesting is a RecursionError)."""


def json_problem(exc: BaseException) -> str:
    """Why a JSON text could not be parsed, in a few words that follow "<file> is" in a one-line error."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply to read"
    if "digits" in str(exc):
        return f"JSON with a number of more than {sys.get_int_max_str_digits()} digits (refused)"
    return f"not valid JSON: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
