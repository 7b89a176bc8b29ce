"""Keep the build machine's local paths out of a published site.

Result files record some local paths (a `precomputed:` maps folder, a `python:` module file).
Everything the site publishes from them goes through `redact`: an absolute path becomes "…/"
plus its last component, which still tells a reader which folder or file it was.
"""

from __future__ import annotations

import re
from typing import Any

# An absolute POSIX path, a home-relative one or a Windows drive path, where a path can start
# (after a space, a quote, "=", ":", "(" or "," — not inside "</b>" or "results/x"), and not a URL
# ("https://host/x": the first slash is followed by another).
_ABSOLUTE = re.compile(r"(?:^|(?<=[\s\"'=:(\[,]))(?:~|[A-Za-z]:)?[/\\](?![/\\\s])[^\s\"'<>|;,()\[\]{}]+")
# A whole string that is one (a `spec:` prefix allowed): spaces in it are part of the path.
_WHOLE = re.compile(r"([a-z]+:)?((?:~|[A-Za-z]:)?[/\\](?![/\\]).*)", re.S)


def _shorten(path: str) -> str:
    parts = [p for p in re.split(r"[/\\]", path) if p and p != "~" and not p.endswith(":")]
    return "…/" + parts[-1] if parts else "…"


def redact(text: str) -> str:
    """`text` with every absolute local path shortened to "…/<last component>"."""
    whole = _WHOLE.fullmatch(text)
    if whole:
        return (whole.group(1) or "") + _shorten(whole.group(2))
    return _ABSOLUTE.sub(lambda m: _shorten(m.group(0)), text)


def redact_json(value: Any) -> Any:
    """A JSON value with `redact` applied to every string in it (keys included)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_json(v) for v in value]
    if isinstance(value, dict):
        return {redact(k): redact_json(v) for k, v in value.items()}
    return value
