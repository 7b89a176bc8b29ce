"""DDP under torchrun (2 CPU processes, gloo): ranks stay identical, and stop + resume reproduces
the uninterrupted run bit for bit (across an epoch boundary, with gradient accumulation)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from da2k.synthetic import make_benchmark

pytestmark = pytest.mark.slow


def _torchrun(out: Path, data: Path, *extra: str) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    da2k = shutil.which("da2k", path=str(Path(sys.executable).parent)) or "da2k"
    cmd = [
        torchrun, "--standalone", "--nproc_per_node", "2", "--no-python", da2k,
        "train", "teacher", "--data", str(data), "--encoder", "vit-tiny", "--init", "random",
        "--size", "28", "--batch-size", "2", "--accum", "2", "--iters", "6", "--lr", "1e-4",
        "--workers", "0", "--log-every", "1", "--save-every", "100", "--device", "cpu", "--out", str(out), *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ddp")
    make_benchmark(root / "data", n_images=10, size=(28, 36), pairs_per_image=1, exif_every=0, seed=5)
    # 10 images / 2 ranks = 5 per rank -> 2 batches of 2 per epoch: 6 steps x 2 micro-steps
    # cross several epochs, and stopping after 3 steps stops part-way through one.
    _torchrun(root / "straight", root / "data")
    _torchrun(root / "resumed", root / "data", "--stop-after", "3")
    first_half = json.loads((root / "resumed" / "ranks.json").read_text())
    _torchrun(root / "resumed", root / "data")
    return {"root": root, "first_half": first_half}


def test_both_ranks_hold_identical_weights_after_ddp_steps(runs):
    ranks = json.loads((runs["root"] / "straight" / "ranks.json").read_text())
    assert ranks["step"] == 6
    assert len(ranks["weights_sha256"]) == 2
    assert ranks["weights_sha256"][0] == ranks["weights_sha256"][1]


def test_stopping_and_resuming_reproduces_the_uninterrupted_run_exactly(runs):
    assert runs["first_half"]["step"] == 3
    straight = torch.load(runs["root"] / "straight" / "model.pt", weights_only=True)
    resumed = torch.load(runs["root"] / "resumed" / "model.pt", weights_only=True)
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    # ... and the training actually moved the weights (a no-op run would also be "exact").
    assert (
        runs["first_half"]["weights_sha256"][0]
        != json.loads((runs["root"] / "resumed" / "ranks.json").read_text())["weights_sha256"][0]
    )


def test_resumed_log_has_each_step_once_with_the_same_losses(runs):
    def losses(name: str) -> list[tuple[str, str]]:
        lines = (runs["root"] / name / "log.csv").read_text().splitlines()
        header = lines[0].split(",")
        return [(row.split(",")[0], row.split(",")[header.index("train_loss")]) for row in lines[1:]]

    assert losses("resumed") == losses("straight")
    assert [s for s, _ in losses("straight")] == [str(i) for i in range(1, 7)]


def test_pseudo_labelling_under_torchrun_splits_images_between_ranks(tmp_path):
    from da2k.models import build_model

    make_benchmark(tmp_path / "real", n_images=5, size=(28, 36), pairs_per_image=1, exif_every=0, seed=6)
    teacher = tmp_path / "teacher.pt"
    torch.save(build_model("vit-tiny").state_dict(), teacher)
    bindir = str(Path(sys.executable).parent)
    cmd = [
        shutil.which("torchrun", path=bindir) or "torchrun", "--standalone", "--nproc_per_node", "2", "--no-python",
        shutil.which("da2k", path=bindir) or "da2k", "pseudo-label", "--teacher", str(teacher), "--encoder", "vit-tiny",
        "--images", str(tmp_path / "real" / "images"), "--out", str(tmp_path / "pseudo"), "--input-size", "28", "--device", "cpu",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    parts = {p.name: len(p.read_text().splitlines()) for p in (tmp_path / "pseudo" / "parts").glob("*.jsonl")}
    assert parts == {"rank-0.jsonl": 3, "rank-1.jsonl": 2}
    manifest = json.loads((tmp_path / "pseudo" / "manifest.json").read_text())
    assert len(manifest["items"]) == 5 and len({item["image"] for item in manifest["items"]}) == 5
