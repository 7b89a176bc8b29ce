"""The bad-input matrix: every command, fed what users actually feed it, answers with one line
naming the problem, the right exit status (1 failed work, 2 bad usage), no traceback, and
leaves every file as it was (nothing created, nothing changed, no planted code run)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from fault_helpers import changes, plant_pickle, snapshot

from da2k.cli import main
from da2k.models import build_model
from da2k.models.train.pseudo_label import pseudo_label
from da2k.synthetic import make_benchmark

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder with one of everything: a benchmark, a database, weights, a planted pickle,
    a photo, a text file, an empty file, a label folder, broken annotation files."""
    ws = tmp_path_factory.mktemp("ws")
    bench = make_benchmark(ws / "bench", n_images=4, size=(32, 40), pairs_per_image=2, seed=5)
    torch.manual_seed(0)
    torch.save(build_model("vit-tiny").state_dict(), ws / "tiny.pth")
    plant_pickle(ws / "planted.pt", ws / "MARKER", **{"pretrained.cls_token": torch.zeros(1, 1, 8)})
    shutil.copy(FIXTURES / "demo01.jpg", ws / "photo.jpg")
    (ws / "notes.txt").write_text("not a database\n")
    (ws / "empty.pth").write_bytes(b"")
    (ws / "folder").mkdir()
    (ws / "empty_images").mkdir()
    (ws / "photos").mkdir()
    shutil.copy(FIXTURES / "demo01.jpg", ws / "photos" / "a.jpg")
    with sqlite3.connect(ws / "other.db") as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    assert CliRunner().invoke(main, ["import-benchmark", str(ws / "bench"), "--db", str(ws / "da2k.db")]).exit_code == 0
    pseudo_label(
        ws / "tiny.pth", ws / "bench" / "images", ws / "labels", encoder="vit-tiny", input_size=28, device="cpu"
    )
    _broken_benchmarks(ws, bench)
    planted_run = ws / "run_planted"
    planted_run.mkdir()
    plant_pickle(planted_run / "last.pt", ws / "MARKER", step=torch.tensor(1))
    (ws / "predicted").mkdir()
    (ws / "predicted" / "a.npy").write_bytes(b"made by someone else")
    (ws / "home").mkdir()
    return ws


def _broken_benchmarks(ws: Path, bench) -> None:
    text = (bench.root / "annotations.json").read_text()
    ann = json.loads(text)
    key, pairs = next(iter(ann.items()))
    variants = {
        "bigint": json.dumps(ann).replace(f'"point1": [{pairs[0]["point1"][0]},', '"point1": [' + "7" * 5000 + ",", 1),
        "deep": "[" * 100_000 + "]" * 100_000,
        "surrogate": json.dumps({"images/indoor/\udcff.png": pairs}),  # a lone surrogate, escaped
        "longname": json.dumps({"images/indoor/" + "n" * 300 + ".png": pairs}),
        "outside": json.dumps({key: [{**pairs[0], "point1": [10_000, 3]}]}),
    }
    for name, body in variants.items():
        shutil.copytree(bench.root, ws / f"bad_{name}")
        (ws / f"bad_{name}" / "annotations.json").write_text(body)
    assert "7" * 5000 in variants["bigint"]


@dataclass(frozen=True)
class Case:
    """One row: the command line (shell words; `{ws}` is the workspace, `$MAPS`, `$DEPTH`,
    `$TINY`, `$TRAIN`, `$MINE` stand for the strings below), the fragment the one error line
    holds, the exit status, fragments it must not hold, and whether the command lists problems
    on stdout instead (`da2k validate`)."""

    id: str
    command: str
    fragment: str
    code: int = 1
    absent: tuple[str, ...] = ()
    listing: bool = False

    @property
    def args(self) -> list[str]:
        words = []
        for word in shlex.split(self.command):
            words += WORDS[word] if word in WORDS else [word]
        return words


MAPS = "precomputed:{ws}/bench/depth/images;kind=depth"
TINY = "vit-tiny;weights={ws}/tiny.pth;input_size=28"
TRAIN = "--encoder vit-tiny --init random --iters 2 --batch-size 2 --size 28 --workers 0 --device cpu"
MINE = "mine --images {ws}/bench/images --db {ws}/new.db"
PL = "pseudo-label --encoder vit-tiny --images {ws}/bench/images"
WORDS = {
    "$MAPS": [MAPS],
    "$DEPTH": [MAPS.split(";")[0]],
    "$TINY": [TINY],
    "$TRAIN": TRAIN.split(),
    "$MINE": MINE.split(),
    "$PL": PL.split(),
}

# fmt: off
CASES = [
    # --db: checked before anything is created
    Case("stats-db-jpeg", "stats --db {ws}/photo.jpg", "looks like a JPEG image"),
    Case("stats-db-text", "stats --db {ws}/notes.txt", "looks like a text file"),
    Case("stats-db-folder", "stats --db {ws}/folder", "is a folder"),
    Case("stats-db-missing", "stats --db {ws}/missing.db", "no annotation database"),
    Case("stats-db-mysql", "stats --db mysql://u@h/db", "pip install pymysql", absent=("postgres",)),
    Case("stats-db-dialect", "stats --db nosuch://x/y", "unknown database dialect"),
    Case("mine-db-missing-dir", "mine --images {ws}/bench/images --db {ws}/nodir/x.db --expert $MAPS --expert $TINY",
         "{ws}/nodir does not exist"),
    Case("mine-db-other-program", "mine --images {ws}/bench/images --db {ws}/other.db --expert $MAPS --expert $TINY",
         "another program"),
    Case("export-db-jpeg", "export --db {ws}/photo.jpg --out {ws}/out", "not a SQLite database"),
    Case("import-db-text", "import-benchmark {ws}/bench --db {ws}/notes.txt", "not a SQLite database"),
    Case("merge-into-jpeg", "store merge {ws}/da2k.db --into {ws}/photo.jpg", "not a SQLite database"),
    Case("merge-source-text", "store merge {ws}/notes.txt --into {ws}/new.db", "not a SQLite database"),
    Case("annotate-db-jpeg", "annotate --db {ws}/photo.jpg", "not a SQLite database"),
    # refused runs leave no database behind
    Case("mine-empty-folder", "mine --images {ws}/empty_images --db {ws}/new.db --expert $MAPS --expert $TINY",
         "no images under"),
    Case("mine-one-expert", "$MINE --expert $MAPS", "at least two experts"),
    Case("mine-planted-expert", "$MINE --expert $MAPS --expert 'vit-tiny;weights={ws}/planted.pt'", "refused"),
    Case("mine-offline-expert", "$MINE --expert $MAPS --expert vits", "'vits;weights=PATH'", absent=("--weights",)),
    Case("mine-tiny-without-weights", "$MINE --expert $MAPS --expert vit-tiny",
         ";weights=PATH", absent=("--weights",)),
    Case("import-bigint", "import-benchmark {ws}/bad_bigint --db {ws}/new.db", "4300 digits"),
    # numbers: click refuses them before any output (exit 2)
    Case("train-size-50", "train teacher --data {ws}/bench --out {ws}/run $TRAIN --size 50",
         "not a multiple of 14", 2),
    Case("train-workers-negative", "train student --pseudo {ws}/labels --out {ws}/run --workers -1", "--workers", 2),
    Case("train-iters-zero", "train metric --data {ws}/bench --out {ws}/run --iters 0", "--iters", 2),
    Case("train-lr-zero", "train teacher --data {ws}/bench --out {ws}/run --lr 0", "--lr", 2),
    Case("mine-audit-rate", "$MINE --audit-rate 2", "--audit-rate", 2),
    Case("mine-min-margin", "$MINE --min-margin -1", "--min-margin", 2),
    Case("mine-shard", "$MINE --shard 3/2", "INDEX must be in 0..COUNT-1", 2),
    Case("evaluate-limit-zero", "evaluate --model $DEPTH --kind depth --data {ws}/bench --limit 0 --out {ws}/results",
         "--limit", 2),
    Case("annotate-port-zero", "annotate --db {ws}/da2k.db --port 0", "--port", 2),
    Case("predict-input-size", "predict {ws}/photo.jpg --model vit-tiny --out {ws}/p --input-size 5",
         "--input-size", 2),
    Case("pseudo-label-input-size", "$PL --teacher {ws}/tiny.pth --out {ws}/pl --input-size 3",
         "--input-size", 2),
    Case("unknown-command", "nosuch", "No such command", 2),
    # checkpoints: never unpickled, one clear line
    Case("predict-weights-text", "predict {ws}/photo.jpg --model vit-tiny --weights {ws}/notes.txt --out {ws}/p",
         "not a PyTorch or safetensors checkpoint", absent=("weights_only",)),
    Case("predict-weights-empty", "predict {ws}/photo.jpg --model vit-tiny --weights {ws}/empty.pth --out {ws}/p",
         "is empty"),
    Case("predict-weights-planted", "predict {ws}/photo.jpg --model vit-tiny --weights {ws}/planted.pt --out {ws}/p",
         "could run code", absent=("weights_only=False",)),
    Case("evaluate-weights-planted",
         "evaluate --model vit-tiny --weights {ws}/planted.pt --data {ws}/bench --out {ws}/results --cache-dir {ws}/c",
         "could run code"),
    Case("train-init-planted",
         "train teacher --data {ws}/bench --out {ws}/run --encoder vit-tiny --init {ws}/planted.pt",
         "could run code"),
    Case("train-last-pt-planted", "train teacher --data {ws}/bench --out {ws}/run_planted $TRAIN", "refused"),
    Case("pseudo-label-teacher-planted", "$PL --teacher {ws}/planted.pt --out {ws}/pl",
         "could run code"),
    Case("predict-offline", "predict {ws}/photo.jpg --model vits --out {ws}/p", "depth_anything_v2_vits.pth"),
    # annotation files
    Case("validate-bigint", "validate {ws}/bad_bigint", "4300 digits"),
    Case("validate-deep", "validate {ws}/bad_deep", "nested too deeply"),
    Case("validate-surrogate", "validate {ws}/bad_surrogate", "\\udcff.png: image file not found", listing=True),
    Case("validate-long-name", "validate {ws}/bad_longname", "File name too long"),
    Case("evaluate-bigint", "evaluate --model $DEPTH --kind depth --data {ws}/bad_bigint --out {ws}/results",
         "4300 digits"),
    Case("evaluate-long-name", "evaluate --model $DEPTH --kind depth --data {ws}/bad_longname --out {ws}/results",
         "File name too long"),
    # jobs refusing to lose or mix work
    Case("train-eval-broken-benchmark", "train teacher --data {ws}/bench --out {ws}/run $TRAIN --eval {ws}/bad_outside",
         "fix them before training", absent=("--skip-invalid",)),
    Case("export-into-photos", "export --db {ws}/da2k.db --out {ws}/photos", "--force"),
    Case("export-onto-file", "export --db {ws}/da2k.db --out {ws}/notes.txt", "is a file", 2),
    Case("predict-foreign-output",
         "predict {ws}/photos --model vit-tiny --weights {ws}/tiny.pth --input-size 28 --out {ws}/predicted",
         "--overwrite"),
    Case("pseudo-label-other-input-size", "$PL --teacher {ws}/tiny.pth --out {ws}/labels --input-size 42",
         "input_size 28"),
    Case("leaderboard-missing-results", "leaderboard build {ws}/nothing --out {ws}/site", "does not exist", 2),
]
# fmt: on


PROGRESS = re.compile(r"\[\d\d:\d\d[<,]|\d+it/s|\?\w+/s\]")


def _error_lines(stderr: str) -> list[str]:
    """stderr without progress bars and log records (what the user reads as the error)."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and not line.startswith(("WARNING ", "INFO ")) and not PROGRESS.search(line)
    ]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_with_the_right_exit_status_and_changes_nothing(case, workspace, monkeypatch):
    ws = workspace
    monkeypatch.chdir(ws)
    monkeypatch.setenv("HOME", str(ws / "home"))  # default caches land inside the snapshot
    monkeypatch.delenv("DA2K_CACHE_DIR", raising=False)
    before = snapshot(ws)
    args = [a.format(ws=ws) for a in case.args]
    result = CliRunner().invoke(main, args)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    stderr = result.stderr
    assert "Traceback" not in stderr and "Traceback" not in result.output
    assert result.exit_code == case.code, result.output
    lines = _error_lines(stderr) if not case.listing else [result.stdout.splitlines()[0]]
    assert len(lines) == 1 and (case.listing or lines[0].startswith("Error: ")), stderr
    assert case.fragment.format(ws=ws) in lines[0], lines[0]
    for fragment in case.absent:
        assert fragment not in lines[0], lines[0]
    assert not (ws / "MARKER").exists(), "a planted pickle ran"
    assert changes(before, snapshot(ws)) == []


SYNTHETIC = [
    (("--size", "foo"), "'foo' is not HxW"),
    (("--size", "4x4"), "each side must be 16 to 4096"),
    (("--images", "0"), "--images"),
    (("--pairs", "-2"), "--pairs"),
]


@pytest.mark.parametrize("args, fragment", SYNTHETIC, ids=[" ".join(a) for a, _ in SYNTHETIC])
def test_synthetic_refuses_bad_numbers_in_one_line_before_writing(args, fragment, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "da2k.synthetic", str(tmp_path / "out"), *args], capture_output=True, text=True
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = _error_lines(done.stderr)
    assert len(lines) == 1 and fragment in lines[0], done.stderr
    assert not (tmp_path / "out").exists()


def test_busy_port_is_refused_before_the_app_is_built(workspace):
    import socket

    pytest.importorskip("gradio")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["annotate", "--db", str(workspace / "da2k.db"), "--port", str(port)])
    assert result.exit_code == 1 and "pass --port" in result.stderr and "Traceback" not in result.stderr
    assert len(_error_lines(result.stderr)) == 1


def test_offline_hub_lookup_fails_at_once_even_without_hf_hub_offline(tmp_path):
    """An unreachable hub (no HF_HUB_OFFLINE): one line in seconds, not half a minute of retries."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_HUB_CACHE=str(tmp_path / "cache"), HF_ENDPOINT="http://127.0.0.1:9")  # nothing listens on 9
    import time

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "da2k", "predict", str(FIXTURES / "demo01.jpg"), "--model", "vits", "--out",
         str(tmp_path / "p")], env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    seconds = time.monotonic() - started
    lines = _error_lines(done.stderr)
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert "unreachable" in lines[0] and "depth-anything/Depth-Anything-V2-Small" in lines[0]
    assert "--weights" in lines[0] and "DA2K_WEIGHTS_DIR" in lines[0]
    assert seconds < 20, f"{seconds:.0f} s"  # mostly interpreter and torch start-up; the retries took ~23 s
