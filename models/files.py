"""Atomic file writes: readers see the old file or the new one, never a partial one.

The one writer for the whole toolkit (models, results, maps, caches, exports). Files get the
mode the umask allows, as `open()` would give them (a temporary file alone would be 0600).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Callable

_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[^.]+\.tmp(?P<suffix>\.[^.]*)?$")


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)` on a temporary file next to `path`, then rename it over `path`.

    The temporary name keeps `path`'s suffix (numpy and Pillow pick formats by it). On any
    failure the temporary file is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    return atomic_write(path, write)


def temporary_name(path: str | os.PathLike, tag: str) -> Path:
    """A temporary name next to `path` in the writer's pattern (for writes that cannot go
    through `atomic_write`, e.g. a hard link then a rename); `tag` makes it unique."""
    path = Path(path)
    return path.parent / f".{path.name}.{tag}.tmp{path.suffix}"


def remove_temporaries(folder: str | os.PathLike) -> int:
    """Remove, under `folder`, the temporary files a killed writer left (`.<name>.<tag>.tmp<ext>`);
    returns how many. Call it only on folders the caller owns."""
    removed = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            match = _TEMPORARY.match(name)
            if match and Path(match["name"]).suffix == (match["suffix"] or ""):
                Path(dirpath, name).unlink(missing_ok=True)
                removed += 1
    return removed
