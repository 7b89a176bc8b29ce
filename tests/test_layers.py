"""The layer contracts of pyproject.toml hold, and breaking one fails the check CI runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / ".ci" / "lint_imports.py"


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True, timeout=300)


def _copy_tree(dest: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", dest)
    for folder in ("da2k", "models", "annotator_app", "leaderboard"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_the_tree_keeps_every_layer_contract():
    run = _lint(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_models_importing_the_benchmark_layer_breaks_the_contract(tmp_path):
    tree = _copy_tree(tmp_path)
    weights = tree / "models" / "weights.py"
    weights.write_text(weights.read_text() + "\nfrom da2k.evaluate import evaluate  # noqa\n")
    run = _lint(tree)
    assert run.returncode != 0
    assert "models knows nothing of DA-2K BROKEN" in run.stdout
    assert "da2k.models.weights -> da2k.evaluate" in run.stdout
