"""What a run keeps on disk to resume exactly, and to never run code from it.

`last.pt` holds tensors and plain Python values only (the RNG states are turned into tensors
and numbers), so it is read with `torch.load(weights_only=True)`: a planted file that carries
code is refused, never executed. `log.csv` and `eval.csv` are appended row by row; on resume,
rows past the resumed step and a line cut short by a kill are dropped.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from da2k.models.errors import ModelError
from da2k.models.files import atomic_write, atomic_write_text

STATE_FILE = "last.pt"
MODEL_FILE = "model.pt"


def rng_state() -> dict[str, Any]:
    """This process's Python, NumPy, torch (and CUDA) RNG states as tensors and numbers."""
    version, keys, gauss = random.getstate()
    name, np_keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "keys": torch.tensor(keys, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` recorded (bit-exact)."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["keys"].tolist()), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(obj: Any, path: Path) -> None:
    """`torch.save` through the atomic writer: a kill leaves the old file or the new one.

    Saved through a file object, so the archive's inner folder name is fixed rather than taken
    from the random temporary name: equal weights give byte-equal files (and checkpoint hashes)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    atomic_write(path, write)


def load_state(path: Path) -> dict[str, Any]:
    """A run's `last.pt`, read weights-only (tensors and plain values): never unpickles code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- damaged, foreign or code-carrying: all refused alike
        first = str(exc).strip().splitlines()
        kind = "holds Python objects besides tensors" if "weights only" in str(exc).lower() else "cannot be read"
        raise ModelError(
            f"{path} {kind} ({first[0].split('. ')[0] if first else type(exc).__name__}); refused: move it "
            "away to start afresh, or pass --no-resume"
        ) from None
    needed = {"model", "optimizer", "scheduler", "scaler", "step", "epoch", "consumed", "ranks"}
    if not isinstance(state, dict) or not needed <= set(state):
        raise ModelError(f"{path} is not a training state of this version; move it away or pass --no-resume")
    return state


class CsvLog:
    """A CSV file of rows keyed by `step`, appended as training goes (rank 0 only).

    Opening it for a run resumed at `resumed_step` drops rows past that step and a last line
    cut short by a kill, so the file reads as if the run had never stopped."""

    def __init__(self, path: Path, resumed_step: int) -> None:
        self.path = path
        self.fields: list[str] | None = None
        self.rows: list[dict[str, str]] = []
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            if not text.endswith("\n"):
                text = text[: text.rfind("\n") + 1]
            reader = csv.DictReader(io.StringIO(text, newline=""))
            self.rows = [r for r in reader if _step(r) is not None and _step(r) <= resumed_step]
            self.fields = list(reader.fieldnames or []) or None
            self._rewrite()

    def steps(self) -> set[int]:
        return {_step(r) for r in self.rows}

    def write(self, row: dict[str, Any]) -> None:
        """Append `row` (a row for a step already present replaces it)."""
        step = int(row["step"])
        replace = step in self.steps()
        self.rows = [r for r in self.rows if _step(r) != step] + [{k: str(v) for k, v in row.items()}]
        if self.fields is None:
            self.fields = list(row)
        if replace or not self.path.is_file():
            self._rewrite()
            return
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(row)

    def _rewrite(self) -> None:
        if not self.rows or not self.fields:
            self.path.unlink(missing_ok=True)
            return
        out = io.StringIO(newline="")
        writer = csv.DictWriter(out, self.fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, out.getvalue())


def _step(row: dict[str, str]) -> int | None:
    try:
        return int(row.get("step") or "")
    except ValueError:
        return None


class TrainLog:
    """Rank 0's `log.csv` (and TensorBoard, when installed): rows past a resumed step are
    dropped so the log reads as the uninterrupted run's."""

    def __init__(self, out: Path, start_step: int) -> None:
        self.csv = CsvLog(out / "log.csv", start_step)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tb"), purge_step=start_step + 1)
        except ImportError:  # tensorboard is optional
            self.tb = None

    def write(self, row: dict) -> None:
        self.csv.write(row)
        if self.tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key.replace("_", "/", 1), value, row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
