"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


class Da2kError(Exception):
    """A problem the user can fix (bad input, missing data, wrong flag); never a bug."""
