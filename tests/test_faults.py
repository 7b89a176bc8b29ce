"""The fault matrix: long commands killed (SIGKILL) at several points and run again give what an
uninterrupted run gives, lose nothing and never leave a half-written file; bad model output
(NaN) never stops mining; Ctrl-C exits 130. Kill tests run the commands in subprocesses (slow)."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from fault_helpers import file_lines, kill_on_line, kill_when, run_da2k, start_da2k
from sqlalchemy import select

from da2k.cli import main
from da2k.models import build_model, get_variant
from da2k.models.train.data import Augment, TrainSet, parse_data_spec
from da2k.models.train.engine import TrainConfig, train
from da2k.models.train.losses import SSIGradientLoss
from da2k.models.train.stages import init_model
from da2k.store import ExpertVote, Image, Pair, Store
from da2k.store.stats import format_stats, store_stats
from da2k.synthetic import make_benchmark

TIMING = {"wall_time_s", "date", "hardware", "elapsed_s", "images_per_s", "latency_ms", "latency"}

EXPERTS = '''
import os
import time
import numpy as np


def bright(image):
    """Brightness as disparity, slowed by $DA2K_TEST_DELAY s per image."""
    time.sleep(float(os.environ.get("DA2K_TEST_DELAY", "0")))
    return np.asarray(image.convert("L"), dtype=np.float32), "disparity"


def dark(image):
    return -np.asarray(image.convert("L"), dtype=np.float32) / 7.0, "depth"


def broken(image):
    """NaN over the left half, and on every third image nothing but NaN."""
    values = np.asarray(image.convert("L"), dtype=np.float32).copy()
    values[:, : values.shape[1] // 2] = np.nan
    if int(values[np.isfinite(values)].sum()) % 3 == 0:
        values[:] = np.nan
    return values, "disparity"
'''


def _experts(tmp: Path, *names: str) -> list[str]:
    module = tmp / "experts.py"
    module.write_text(EXPERTS)
    return [f"python:{module}:{name}" for name in names]


def _strip(value):
    """A result or row without the fields that legitimately differ between runs (timing)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [_strip(row) for row in csv.DictReader(f)]


def _db_rows(db: Path) -> dict[str, list]:
    """What a mining or import run stored, by content (ids and times aside)."""
    with Store(db, create=False) as store, store.read() as s:
        images = sorted(s.execute(select(Image.sha256, Image.path, Image.scenario, Image.width, Image.height)).all())
        pairs = sorted(
            s.execute(
                select(Image.sha256, Pair.p1_row, Pair.p1_col, Pair.p2_row, Pair.p2_col, Pair.status, Pair.answer).join(
                    Image, Pair.image_id == Image.id
                )
            ).all()
        )
        votes = sorted(
            s.execute(
                select(Image.sha256, Pair.p1_row, Pair.p1_col, ExpertVote.expert_run_id, ExpertVote.closer,
                       ExpertVote.value1, ExpertVote.value2)
                .join(Pair, ExpertVote.pair_id == Pair.id)
                .join(Image, Pair.image_id == Image.id)
            ).all(), key=repr,
        )  # fmt: skip
    return {"images": images, "pairs": pairs, "votes": votes}


def _count(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5) as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.Error:
        return 0


# ------------------------------------------------------------------ bad model output (fast)


def test_nan_expert_values_are_no_answer_and_send_the_pair_to_humans(tmp_path):
    bench = make_benchmark(tmp_path / "b", n_images=6, size=(64, 80), pairs_per_image=1, seed=3)
    db = tmp_path / "m.db"
    args = ["mine", "--images", str(bench.root / "images"), "--db", str(db), "--points", "felzenszwalb"]
    for spec in _experts(tmp_path, "bright", "broken"):
        args += ["--expert", spec]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with Store(db, create=False) as store:
        with store.read() as s:
            none = s.scalars(select(ExpertVote).where(ExpertVote.closer == "none")).all()
            statuses = {p.id: p.status for p in s.scalars(select(Pair))}
        assert none and all(v.value1 is None or v.value2 is None for v in none)
        assert all(statuses[v.pair_id] == "needs_human" for v in none)  # no answer agrees with nothing
        stats = store_stats(store)
    broken = next(e for e in stats["experts"] if e["name"].endswith(":broken"))
    assert broken["no_answer"] == len(none)
    assert f"{len(none)} without an answer" in format_stats(stats)


def test_an_expert_whose_output_cannot_be_read_fails_that_image_and_mining_goes_on(tmp_path):
    bench = make_benchmark(tmp_path / "b", n_images=3, size=(64, 80), pairs_per_image=1, seed=4)
    module = tmp_path / "odd.py"
    module.write_text("import numpy as np\n\ndef flat(image):\n    return np.zeros(7, np.float32), 'disparity'\n")
    db = tmp_path / "m.db"
    args = ["mine", "--images", str(bench.root / "images"), "--db", str(db), "--points", "felzenszwalb"]
    for spec in [*_experts(tmp_path, "bright"), f"python:{module}:flat"]:
        args += ["--expert", spec]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "could not be mined" in result.stderr and "Traceback" not in result.stderr
    assert _count(db, "images") == 3  # every image stored; its pairs wait (pending) for a working expert


# ------------------------------------------------------------------ training (fast, in process)


def _train(out: Path, data: Path, stop_after=None, evaluate=None, iters=5) -> list[int]:
    torch.manual_seed(0)
    model = init_model(get_variant("vit-tiny"), "random")
    calls: list[int] = []

    def scored(model_file: Path, step: int) -> dict:
        calls.append(step)
        weights = torch.load(model_file, weights_only=True)
        return {"checksum": round(float(sum(v.double().sum() for v in weights.values())), 6)}

    cfg = TrainConfig(out_dir=str(out), iters=iters, batch_size=2, lr=1e-4, workers=0, log_every=2, eval_every=2,
                      stop_after=stop_after)  # fmt: skip
    ds = TrainSet(parse_data_spec(str(data)), Augment(size=28))
    train(model, ds, SSIGradientLoss(), cfg, evaluate=scored if evaluate is None else evaluate)
    return calls


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """Training data and an uninterrupted 5-step run (evaluations at steps 2, 4 and 5)."""
    root = tmp_path_factory.mktemp("train")
    data = make_benchmark(root / "data", n_images=8, size=(28, 36), pairs_per_image=1, exif_every=0).root
    assert _train(root / "straight", data) == [2, 4, 5]
    return data, root / "straight"


def test_stop_after_and_resume_give_the_uninterrupted_log_evaluations_and_weights(straight_run, tmp_path):
    data, straight = straight_run
    # stopped after step 3, between two log rows: the resumed run's row for step 4 still
    # averages steps 3 and 4
    calls = [_train(tmp_path / "sliced", data, stop_after=3) for _ in range(2)]
    assert calls == [[2], [4, 5]]
    assert _csv_rows(tmp_path / "sliced" / "log.csv") == _csv_rows(straight / "log.csv")
    assert (tmp_path / "sliced" / "eval.csv").read_text() == (straight / "eval.csv").read_text()
    a = torch.load(straight / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "sliced" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_an_evaluation_lost_to_a_crash_is_redone_on_resume_and_the_final_one_never_skipped(straight_run, tmp_path):
    data, straight = straight_run

    def crash(model_file, step):
        raise KeyboardInterrupt  # what a kill in the middle of the evaluation leaves behind

    run = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        _train(run, data, evaluate=crash)  # the evaluation at step 2 dies
    assert _train(run, data, stop_after=2) == [2, 4]  # redone first, then on to step 4
    with pytest.raises(KeyboardInterrupt):
        _train(run, data, evaluate=crash)  # the final evaluation (step 5) dies
    assert _train(run, data) == [5]  # training was done: only the final evaluation runs
    assert _train(run, data) == []  # nothing left to do
    assert (run / "eval.csv").read_text() == (straight / "eval.csv").read_text()


# ------------------------------------------------------------------ kills (subprocesses)


@pytest.mark.slow
def test_evaluate_killed_twice_resumes_to_the_same_result(tmp_path):
    bench = make_benchmark(tmp_path / "b", n_images=8, size=(48, 64), pairs_per_image=3, seed=6).root
    [spec] = _experts(tmp_path, "bright")
    args = ["evaluate", "--model", spec, "--data", bench, "--run", "r", "--workers", "1"]
    straight = run_da2k(*args, "--out", tmp_path / "straight", "--cache-dir", tmp_path / "c1")
    assert straight.returncode == 0, straight.stderr
    cache, out = tmp_path / "c2", tmp_path / "killed"
    for images in (2, 5):
        proc = start_da2k(*args, "--out", out, "--cache-dir", cache, env={"DA2K_TEST_DELAY": "0.3"})
        assert kill_when(proc, lambda n=images: len(list(cache.rglob("*.json"))) >= n)
        assert not (out / "r.json").exists()  # nothing half-written: no result before the end
    resumed = run_da2k(*args, "--out", out, "--cache-dir", cache)
    assert resumed.returncode == 0 and "from the cache" in resumed.stdout
    a, b = (json.loads((d / "r.json").read_text()) for d in (tmp_path / "straight", out))
    assert _strip(a) == _strip(b)
    assert (tmp_path / "straight" / "r.pairs.csv").read_bytes() == (out / "r.pairs.csv").read_bytes()


@pytest.mark.slow
def test_mine_with_a_nan_expert_killed_twice_resumes_to_the_same_database(tmp_path):
    bench = make_benchmark(tmp_path / "b", n_images=8, size=(64, 80), pairs_per_image=1, seed=7)
    experts = _experts(tmp_path, "bright", "dark", "broken")
    args = ["mine", "--images", bench.root / "images", "--points", "felzenszwalb", "--workers", "1"]
    for spec in experts:
        args += ["--expert", spec]
    assert run_da2k(*args, "--db", tmp_path / "straight.db").returncode == 0
    db = tmp_path / "killed.db"
    for images in (2, 5):
        proc = start_da2k(*args, "--db", db, env={"DA2K_TEST_DELAY": "0.3"})
        assert kill_when(proc, lambda n=images: _count(db, "images") >= n)
    assert _count(db, "images") < 8
    assert run_da2k(*args, "--db", db).returncode == 0
    assert _db_rows(db) == _db_rows(tmp_path / "straight.db")


@pytest.mark.slow
def test_pseudo_label_killed_twice_resumes_to_the_same_labels(tmp_path):
    images = make_benchmark(tmp_path / "b", n_images=10, size=(56, 72), pairs_per_image=1, seed=8).root / "images"
    torch.manual_seed(0)
    torch.save(build_model("vit-tiny").state_dict(), tmp_path / "t.pt")
    args = ["pseudo-label", "--teacher", tmp_path / "t.pt", "--encoder", "vit-tiny", "--images", images,
            "--input-size", "56", "--device", "cpu", "--workers", "1"]  # fmt: skip
    assert run_da2k(*args, "--out", tmp_path / "straight").returncode == 0
    out = tmp_path / "killed"
    for lines in (2, 6):
        proc = start_da2k(*args, "--out", out)
        kill_when(proc, lambda n=lines: file_lines(out / "parts" / "rank-0.jsonl") >= n)
    assert file_lines(out / "parts" / "rank-0.jsonl") < 10
    assert run_da2k(*args, "--out", out).returncode == 0
    a, b = (json.loads((d / "manifest.json").read_text()) for d in (tmp_path / "straight", out))
    assert a["items"] == b["items"] and b["failed"] == []


@pytest.mark.slow
def test_train_killed_during_its_evaluations_redoes_them_and_matches_an_uninterrupted_run(tmp_path):
    data = make_benchmark(tmp_path / "data", n_images=8, size=(28, 36), pairs_per_image=1, exif_every=0).root
    heldout = make_benchmark(tmp_path / "heldout", n_images=12, size=(48, 64), pairs_per_image=2, seed=9).root
    args = ["train", "teacher", "--data", data, "--eval", heldout, "--eval-every", "3", "--encoder", "vit-tiny",
            "--init", "random", "--size", "28", "--iters", "6", "--batch-size", "2", "--lr", "1e-4",
            "--workers", "0", "--device", "cpu", "--log-every", "2"]  # fmt: skip
    assert run_da2k(*args, "--out", tmp_path / "straight").returncode == 0
    out = tmp_path / "killed"
    # first the evaluation at step 3, then (after redoing it) the final one at step 6
    for nth in (1, 2):
        killed, stderr = kill_on_line(start_da2k(*args, "--out", out), "evaluating", nth=nth)
        assert killed, stderr
        assert "Traceback" not in stderr
    assert (out / "eval.csv").read_text().count("\n") == 2  # header + step 3: step 6's was lost
    resumed = run_da2k(*args, "--out", out)
    assert resumed.returncode == 0 and "redoing it" in resumed.stderr
    straight = tmp_path / "straight"
    assert (out / "eval.csv").read_text() == (straight / "eval.csv").read_text()
    assert _csv_rows(out / "log.csv") == _csv_rows(straight / "log.csv")
    for name in ("step0000003.json", "step0000006.json"):
        assert _strip(json.loads((out / "eval" / name).read_text())) == _strip(
            json.loads((straight / "eval" / name).read_text())
        )
    a, b = (torch.load(d / "model.pt", weights_only=True) for d in (straight, out))
    assert all(torch.equal(a[k], b[k]) for k in a)


def _imported_db(tmp: Path, name: str, n_images: int, seed: int) -> Path:
    bench = make_benchmark(tmp / f"bench_{name}", n_images=n_images, size=(16, 16), pairs_per_image=1, seed=seed)
    db = tmp / f"{name}.db"
    assert CliRunner().invoke(main, ["import-benchmark", str(bench.root), "--db", str(db)]).exit_code == 0
    return db


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_export_killed_midway_never_truncates_annotations_and_rerun_completes_it(tmp_path):
    db = _imported_db(tmp_path, "a", 200, seed=10)
    assert run_da2k("export", "--db", db, "--out", tmp_path / "ref", "--copy").returncode == 0
    out = tmp_path / "out"
    proc = start_da2k("export", "--db", db, "--out", out, "--copy")
    assert kill_when(proc, lambda: len(list((out / "images").rglob("*.png"))) >= 20)
    assert not (out / "annotations.json").exists()  # killed before the end: no annotations at all
    assert run_da2k("export", "--db", db, "--out", out, "--copy").returncode == 0
    previous = (out / "annotations.json").read_bytes()
    assert _tree(out) == _tree(tmp_path / "ref")

    # more pairs settle; the new export is killed half-way: the earlier export stays whole
    more = make_benchmark(tmp_path / "bench_b", n_images=200, size=(16, 16), pairs_per_image=1, seed=11)
    assert CliRunner().invoke(main, ["import-benchmark", str(more.root), "--db", str(db)]).exit_code == 0
    n_before = len(list((out / "images").rglob("*")))
    proc = start_da2k("export", "--db", db, "--out", out, "--copy")
    assert kill_when(proc, lambda: len(list((out / "images").rglob("*"))) >= n_before + 20)
    assert (out / "annotations.json").read_bytes() == previous
    assert run_da2k("export", "--db", db, "--out", out, "--copy").returncode == 0
    assert run_da2k("export", "--db", db, "--out", tmp_path / "ref2", "--copy").returncode == 0
    assert _tree(out) == _tree(tmp_path / "ref2")


@pytest.mark.slow
def test_import_benchmark_of_a_zip_killed_midway_resumes_to_the_same_store_and_images(tmp_path):
    bench = make_benchmark(tmp_path / "src" / "mini", n_images=200, size=(16, 16), pairs_per_image=1, seed=12)
    archive = Path(shutil.make_archive(str(tmp_path / "mini"), "zip", bench.root.parent, "mini"))
    args = ["import-benchmark", archive]
    assert run_da2k(*args, "--db", tmp_path / "straight.db", "--extract-to", tmp_path / "x1").returncode == 0
    extracted = tmp_path / "x2"
    proc = start_da2k(*args, "--db", tmp_path / "killed.db", "--extract-to", extracted)
    assert kill_when(proc, lambda: len(list(extracted.rglob("*.png"))) >= 20)
    assert run_da2k(*args, "--db", tmp_path / "killed.db", "--extract-to", extracted).returncode == 0
    assert _db_rows(tmp_path / "killed.db") == _db_rows(tmp_path / "straight.db")
    assert _tree(extracted) == _tree(tmp_path / "x1")


@pytest.mark.slow
def test_ctrl_c_exits_130_with_one_line_and_keeps_what_was_mined(tmp_path):
    bench = make_benchmark(tmp_path / "b", n_images=6, size=(64, 80), pairs_per_image=1, seed=13)
    db = tmp_path / "m.db"
    args = ["mine", "--images", bench.root / "images", "--db", db, "--points", "felzenszwalb", "--workers", "1"]
    for spec in _experts(tmp_path, "bright", "dark"):
        args += ["--expert", spec]
    proc = start_da2k(*args, env={"DA2K_TEST_DELAY": "0.5"})
    assert kill_when(proc, lambda: _count(db, "images") >= 1, sig=signal.SIGINT)
    assert proc.returncode == 130
    assert "Traceback" not in proc.stderr_text and proc.stderr_text.strip().splitlines()[-1] == "interrupted"
    assert 1 <= _count(db, "images") < 6
    time.sleep(0.1)
    assert run_da2k(*args).returncode == 0 and _count(db, "images") == 6
