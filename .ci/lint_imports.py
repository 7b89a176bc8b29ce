#!/usr/bin/env python3
"""Check the layer contracts of pyproject.toml ([tool.importlinter]) with import-linter.

The source tree maps folders onto import names (`models/` is `da2k.models`, see
[tool.setuptools] package-dir), which import-linter cannot see on disk: this script builds that
view in a temporary folder (hard links, nothing copied) and runs `lint-imports` on it.

    python .ci/lint_imports.py [REPO_ROOT]      exit status: that of lint-imports
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib


def build_view(root: Path, dest: Path) -> None:
    """`dest/<package path>` for every package-dir entry of `root/pyproject.toml`, as hard links."""
    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for name, folder in mapping.items():
        parent, _, last = name.rpartition(".")
        if parent in mapping and Path(folder) == Path(mapping[parent]) / last:
            continue  # already inside its parent's folder
        shutil.copytree(
            root / folder,
            dest.joinpath(*name.split(".")),
            copy_function=os.link,
            ignore=shutil.ignore_patterns("__pycache__"),
        )


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1]).resolve()
    with tempfile.TemporaryDirectory(prefix="da2k-layers-") as tmp:
        build_view(root, Path(tmp))
        env = {**os.environ, "PYTHONPATH": tmp}
        beside = Path(sys.executable).parent / "lint-imports"  # the venv's, even when it is not activated
        lint = str(beside) if beside.is_file() else shutil.which("lint-imports") or "lint-imports"
        return subprocess.call([lint, str(root / "pyproject.toml"), "--no-cache"], cwd=tmp, env=env)


if __name__ == "__main__":
    sys.exit(main())
