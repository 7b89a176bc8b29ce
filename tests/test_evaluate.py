import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from da2k.benchmark import load_benchmark
from da2k.cli import main
from da2k.errors import Da2kError
from da2k.evaluate import default_cache_dir, evaluate
from da2k.models import file_sha256
from da2k.predictors import PrecomputedPredictor, PythonPredictor
from da2k.synthetic import make_benchmark, write_maps

RESULT_FIELDS = {
    "schema",
    "provenance",
    "model",
    "benchmark",
    "scenarios",
    "overall",
    "pairs_file",
    "toolkit_version",
    "hardware",
    "wall_time_s",
    "date",
}


@pytest.fixture
def synth(tmp_path):
    return make_benchmark(tmp_path / "bench", n_images=8, pairs_per_image=3)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DA2K_CACHE_DIR", str(tmp_path / "cache"))


def _run(*args: str):
    result = CliRunner().invoke(main, ["evaluate", *args])
    return result


def _load(out: Path, run: str) -> dict:
    return json.loads((out / f"{run}.json").read_text())


def _sha8(maps: Path) -> str:
    return PrecomputedPredictor(maps, "depth").checkpoint_sha256[:8]


def _rows(out: Path, run: str) -> list[dict]:
    with open(out / f"{run}.pairs.csv", newline="") as f:
        return list(csv.DictReader(f))


def _timeless(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("wall_time_s", "date", "latency_ms", "latency")}


def test_precomputed_ground_truth_end_to_end(synth, tmp_path):
    out = tmp_path / "results"
    r = _run(
        "--model", f"precomputed:{synth.depth_dir}", "--kind", "depth", "--data", str(synth.root), "--out", str(out)
    )
    assert r.exit_code == 0, r.output
    run = f"depth-{_sha8(synth.depth_dir)}-bench"  # model, its content hash, benchmark
    result = _load(out, run)
    assert RESULT_FIELDS <= set(result) and result["provenance"] == "measured"
    assert result["model"]["kind"] == "depth" and result["model"]["predictor"] == "precomputed"
    assert result["benchmark"]["n_pairs"] == 24 and len(result["benchmark"]["annotations_sha256"]) == 64
    assert result["benchmark"]["n_pairs_scored"] == 24 and result["benchmark"]["n_images_scored"] == 8
    assert result["complete"] is True and result["skipped_invalid"]["pairs"] == 0
    assert result["overall"]["n"] == result["overall"]["correct"] == 24
    assert list(result["scenarios"]) == ["indoor", "outdoor", "aerial", "object"]  # canonical order
    assert all(s == {"n": 6, "correct": 6, "accuracy": 1.0, "ci95": s["ci95"]} for s in result["scenarios"].values())
    assert result["pairs_file"] == f"{run}.pairs.csv"
    assert "overall" in r.output and "100.0 %" in r.output
    assert "scored 24 of 24 pairs on 8 of 8 images\n" in r.output
    rows = _rows(out, run)
    assert len(rows) == 24 and rows[0].keys() == {
        "image",
        "pair_index",
        "scenario",
        "value_closer",
        "value_other",
        "correct",
    }
    assert all(float(row["value_closer"]) > float(row["value_other"]) and row["correct"] == "1" for row in rows)


def test_our_model_end_to_end_matches_the_full_resolution_map(synth, tmp_path, tiny_weights):
    from da2k.models import build_model, infer

    out = tmp_path / "results"
    r = _run(
        "--model",
        "vit-tiny",
        "--weights",
        str(tiny_weights),
        "--data",
        str(synth.root),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--precision",
        "fp32",
    )
    assert r.exit_code == 0, r.output
    run = f"vit-tiny-{file_sha256(tiny_weights)[:8]}-bench"
    result = _load(out, run)
    assert result["model"]["id"] == "vit-tiny" and result["model"]["input_size"] == 224
    assert result["overall"]["n"] == 24
    model = build_model("vit-tiny", tiny_weights)
    bench = load_benchmark(synth.root)
    rows = _rows(out, run)
    for key in synth.keys[:3]:  # EXIF-rotated scene001 among them
        full = infer(model, bench.load_image(key), 224).numpy()
        for row, pair in zip([r for r in rows if r["image"] == key], bench.pairs(key)):
            expected = full[tuple(int(v) for v in pair.closer)]
            assert float(row["value_closer"]) == pytest.approx(float(expected), rel=1e-4, abs=1e-5)
    correct = sum(row["correct"] == "1" for row in rows)
    assert correct == result["overall"]["correct"]


def test_rerun_uses_the_cache_and_writes_the_same_result(synth, tmp_path, tiny_weights):
    out = tmp_path / "results"
    args = ["--model", "vit-tiny", "--weights", str(tiny_weights), "--data", str(synth.root), "--out", str(out)]
    args += ["--run", "tiny"]
    assert _run(*args).exit_code == 0
    first = _load(out, "tiny")
    second_run = _run(*args)
    assert second_run.exit_code == 0, second_run.output  # same content: the file may be rewritten
    assert "0 image(s) predicted, 8 from the cache" in second_run.output
    assert _timeless(_load(out, "tiny")) == _timeless(first)
    assert not list(out.glob(".*"))  # no temporary files left behind
    assert (tmp_path / "cache" / "values").is_dir() and not (out / "values").exists()


def test_evaluate_scores_at_fp32_unless_told_and_says_so(synth, tmp_path, tiny_weights, monkeypatch):
    from da2k.models import runtime

    monkeypatch.setattr(runtime, "native_bf16", lambda: True)  # where auto would pick bf16 for predict
    out = tmp_path / "results"
    args = ["--model", "vit-tiny", "--weights", str(tiny_weights), "--data", str(synth.root), "--out", str(out)]
    r = _run(*args, "--run", "default")
    assert r.exit_code == 0, r.output
    assert "precision fp32" in r.output
    assert _load(out, "default")["model"]["settings"]["precision"] == "fp32"
    r = _run(*args, "--run", "auto", "--precision", "auto")  # bf16 reorders too many pairs to score
    assert r.exit_code == 0, r.output
    assert _load(out, "auto")["model"]["settings"]["precision"] == "fp32"
    r = _run(*args, "--run", "bf16", "--precision", "bf16")
    assert r.exit_code == 0, r.output
    assert "precision bf16" in r.output
    assert _load(out, "bf16")["model"]["settings"]["precision"] == "bf16"


def test_compile_is_refused_in_one_line_for_models_that_are_not_ours(synth, tmp_path):
    r = _run("--model", f"precomputed:{tmp_path}", "--data", str(synth.root), "--compile")
    assert r.exit_code == 1
    assert "--compile is for our networks" in r.output and "Traceback" not in r.output


def test_a_killed_run_resumes_without_recomputing(synth, tmp_path, monkeypatch):
    bench = load_benchmark(synth.root)
    module = tmp_path / "flaky.py"
    module.write_text(
        "import numpy as np\n"
        "calls = []\n"
        "def predict(image):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 4 and FAIL:\n"
        "        raise KeyboardInterrupt\n"
        "    a = np.asarray(image, dtype=float)\n"
        "    return a[..., 0] * 3 + a[..., 1], 'disparity'\n"
        "FAIL = True\n"
    )
    predictor = PythonPredictor(f"{module}:predict")
    with pytest.raises(KeyboardInterrupt):
        evaluate(bench, predictor, tmp_path / "out", progress=False, workers=1)
    assert not list((tmp_path / "out").glob("*.json"))
    state = predictor.fn.__globals__  # the module's namespace
    state["FAIL"] = False
    resumed = evaluate(bench, predictor, tmp_path / "out", progress=False)
    assert resumed.computed == 8 - 3 and len(state["calls"]) == 4 + 5
    fresh = evaluate(bench, predictor, tmp_path / "out2", progress=False, cache_dir=tmp_path / "fresh-cache")
    assert fresh.computed == 8
    assert _timeless(resumed.result) == _timeless(fresh.result)


def test_cache_inside_out_is_refused(synth, tmp_path):
    r = _run(
        "--model",
        f"precomputed:{synth.depth_dir}",
        "--kind",
        "depth",
        "--data",
        str(synth.root),
        "--out",
        str(tmp_path / "res"),
        "--cache-dir",
        str(tmp_path / "res" / "cache"),
    )
    assert r.exit_code == 1 and "inside --out" in r.output


def test_default_cache_dir_is_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("DA2K_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "da2k"


def _break(root: Path) -> None:
    """2 unscorable pairs (3 errors), an unknown scenario (a warning: scored) and a missing image."""
    path = root / "annotations.json"
    a = json.loads(path.read_text())
    a["images/indoor/scene000.png"][0]["point1"] = [480, 0]
    a["images/indoor/scene000.png"][1]["closer_point"] = "point3"
    a["images/indoor/scene000.png"][1]["point2"] = [-1, 0]
    a["images/mystery/scene001.jpg"] = a.pop("images/outdoor/scene001.jpg")
    a["images/aerial/gone.jpg"] = [{"point1": [1, 1], "point2": [2, 2], "closer_point": "point1"}]
    path.write_text(json.dumps(a))
    (root / "images/mystery").mkdir()
    (root / "images/outdoor/scene001.jpg").rename(root / "images/mystery/scene001.jpg")
    (root / "depth/images/mystery").mkdir(parents=True)
    (root / "depth/images/outdoor/scene001.npy").rename(root / "depth/images/mystery/scene001.npy")


def test_broken_benchmark_is_scored_as_published_and_refused_with_strict(synth, tmp_path):
    _break(synth.root)
    out = tmp_path / "results"
    base = ["--model", f"precomputed:{synth.depth_dir}", "--kind", "depth", "--data", str(synth.root)]
    base += ["--out", str(out), "--run", "r"]
    refused = _run(*base, "--strict")
    assert refused.exit_code == 1 and not out.exists()
    assert "images/indoor/scene000.png pair 0:" in refused.output and "--strict" in refused.output
    assert "Traceback" not in refused.output

    scored = _run(*base)
    assert scored.exit_code == 0, scored.output
    result = _load(out, "r")
    assert result["skipped_invalid"]["pairs"] == 2 + 1 and result["skipped_invalid"]["images"] == 1
    assert result["skipped_invalid"]["by_reason"] == {"missing": 1} and len(result["skipped_invalid"]["problems"]) == 4
    assert len(result["warnings"]) == 1 and "unknown scenario 'mystery'" in result["warnings"][0]
    assert result["overall"]["n"] == 25 - 3 == result["overall"]["correct"] and result["complete"] is False
    assert result["scenarios"]["indoor"]["n"] == 4 and result["scenarios"]["mystery"]["n"] == 3
    assert result["scenarios"]["outdoor"]["n"] == 3 and list(result["scenarios"])[-1] == "mystery"
    line = "scored 22 of 25 pairs on 8 of 9 images; 1 image missing from the folder, 2 pairs with a point outside their image"
    assert result["summary"] == line + " (listed in the result file)"
    assert result["summary"] in scored.output

    assert _run(*base, "--skip-invalid").exit_code == 0  # the old flag: accepted, changes nothing
    assert _timeless(_load(out, "r")) == _timeless(result)
    allowed = _run(*base, "--allow-scenario", "mystery", "--run", "allowed")
    assert allowed.exit_code == 0 and _load(out, "allowed")["warnings"] == []


def test_ties_count_as_wrong_end_to_end(synth, tmp_path):
    maps = write_maps(synth, tmp_path / "flat", lambda d: np.where(d > 0, 1.0, 0.0))
    r = _run(
        "--model", f"precomputed:{maps}", "--kind", "disparity", "--data", str(synth.root), "--out", str(tmp_path / "o")
    )
    assert r.exit_code == 0
    assert _load(tmp_path / "o", f"flat-{_sha8(maps)}-bench")["overall"]["correct"] == 0


def test_scenarios_and_limit_select_images(synth, tmp_path):
    out = tmp_path / "o"
    base = [
        "--model",
        f"precomputed:{synth.depth_dir}",
        "--kind",
        "depth",
        "--data",
        str(synth.root),
        "--out",
        str(out),
    ]
    name = f"depth-{_sha8(synth.depth_dir)}-bench"
    assert _run(*base, "--scenarios", "indoor,aerial").exit_code == 0
    result = _load(out, f"{name}-indoor+aerial")
    assert set(result["scenarios"]) == {"indoor", "aerial"} and result["overall"]["n"] == 12
    assert _run(*base, "--limit", "3").exit_code == 0
    assert _load(out, f"{name}-first3")["overall"]["n"] == 9
    bad = _run(*base, "--scenarios", "underwater")
    assert bad.exit_code == 1 and "underwater" in bad.output


def test_run_on_a_zip_gives_the_same_counts(synth, tmp_path):
    import zipfile

    archive = tmp_path / "DA-2K.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(synth.root.rglob("*")):
            if f.is_file() and "depth" not in f.parts:
                z.write(f, "DA-2K/" + f.relative_to(synth.root).as_posix())
    bench = load_benchmark(archive)
    result = evaluate(bench, PrecomputedPredictor(synth.depth_dir, "depth"), tmp_path / "o", progress=False).result
    assert result["benchmark"]["name"] == "DA-2K" and result["overall"]["correct"] == 24


def test_compare_prints_the_paired_test(synth, tmp_path):
    out = tmp_path / "o"
    base = ["--data", str(synth.root), "--out", str(out)]
    assert _run("--model", f"precomputed:{synth.depth_dir}", "--kind", "depth", "--run", "right", *base).exit_code == 0
    assert (
        _run("--model", f"precomputed:{synth.depth_dir}", "--kind", "disparity", "--run", "wrong", *base).exit_code == 0
    )
    r = CliRunner().invoke(main, ["compare", str(out / "right.json"), str(out / "wrong.json")])
    assert r.exit_code == 0, r.output
    overall = next(line for line in r.output.splitlines() if line.startswith("overall"))
    assert overall.split() == ["overall", "24", "100.0", "0.0", "24", "0", f"{2 / 2**24:.4g}"]
    assert "indoor" in r.output and "McNemar" in r.output


def test_compare_missing_file_is_one_line(tmp_path):
    r = CliRunner().invoke(main, ["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert r.exit_code == 1 and "does not exist" in r.output and "Traceback" not in r.output


def test_malformed_annotations_is_a_one_line_error(tmp_path):
    (tmp_path / "annotations.json").write_text("{oops")
    r = _run("--model", f"precomputed:{tmp_path}", "--kind", "depth", "--data", str(tmp_path))
    assert r.exit_code == 1 and r.output.strip().count("\n") == 0 and "not valid JSON" in r.output


def test_precomputed_without_kind_is_refused(synth, tmp_path):
    with pytest.raises(Da2kError):
        PrecomputedPredictor(synth.depth_dir, None)
    r = _run("--model", f"precomputed:{synth.depth_dir}", "--data", str(synth.root), "--out", str(tmp_path / "o"))
    assert r.exit_code == 1 and "--kind" in r.output


def test_two_checkpoints_get_two_result_files(synth, tmp_path):
    other = write_maps(synth, tmp_path / "depth-copy", lambda d: d * 2.0)
    out = tmp_path / "o"
    for maps in (synth.depth_dir, other):
        r = _run("--model", f"precomputed:{maps}", "--kind", "depth", "--data", str(synth.root), "--out", str(out))
        assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.glob("*.json"))
    assert names == sorted([f"depth-{_sha8(synth.depth_dir)}-bench.json", f"depth-copy-{_sha8(other)}-bench.json"])


def test_a_different_result_is_never_silently_replaced(synth, tmp_path):
    out = tmp_path / "o"
    base = ["--data", str(synth.root), "--out", str(out), "--run", "same"]
    assert _run("--model", f"precomputed:{synth.depth_dir}", "--kind", "depth", *base).exit_code == 0
    first = (out / "same.json").read_text()
    refused = _run("--model", f"precomputed:{synth.depth_dir}", "--kind", "depth", "--limit", "2", *base)
    assert refused.exit_code == 1 and "already holds a different result" in refused.output
    assert "selection" in refused.output and "--overwrite" in refused.output
    assert (out / "same.json").read_text() == first
    flat = write_maps(synth, tmp_path / "flat", lambda d: np.ones_like(d))
    refused = _run("--model", f"precomputed:{flat}", "--kind", "depth", *base)
    assert refused.exit_code == 1 and (out / "same.json").read_text() == first
    replaced = _run("--model", f"precomputed:{flat}", "--kind", "depth", "--overwrite", *base)
    assert replaced.exit_code == 0 and _load(out, "same")["overall"]["correct"] == 0


def test_compare_refuses_results_on_different_annotation_files(synth, tmp_path):
    out = tmp_path / "o"
    maps = f"precomputed:{synth.depth_dir}"
    assert (
        _run("--model", maps, "--kind", "depth", "--data", str(synth.root), "--out", str(out), "--run", "a").exit_code
        == 0
    )
    path = synth.root / "annotations.json"
    annotations = json.loads(path.read_text())
    annotations.pop(next(iter(annotations)))
    path.write_text(json.dumps(annotations))
    assert (
        _run("--model", maps, "--kind", "depth", "--data", str(synth.root), "--out", str(out), "--run", "b").exit_code
        == 0
    )
    refused = CliRunner().invoke(main, ["compare", str(out / "a.json"), str(out / "b.json")])
    assert refused.exit_code == 1 and "different annotation files" in refused.output and "--force" in refused.output
    assert refused.output.strip().count("\n") == 0
    forced = CliRunner().invoke(main, ["compare", str(out / "a.json"), str(out / "b.json"), "--force"])
    assert forced.exit_code == 0 and "McNemar" in forced.output


def test_the_hub_dataset_revision_is_recorded(synth, tmp_path, monkeypatch):
    import zipfile

    import huggingface_hub

    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "hub" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    with zipfile.ZipFile(snapshot / "DA-2K.zip", "w") as z:
        for f in sorted(synth.root.rglob("*")):
            if f.is_file() and "depth" not in f.parts:
                z.write(f, "DA-2K/" + f.relative_to(synth.root).as_posix())
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: str(snapshot / "DA-2K.zip"))
    r = _run(
        "--model", f"precomputed:{synth.depth_dir}", "--kind", "depth", "--out", str(tmp_path / "o"), "--run", "hub"
    )
    assert r.exit_code == 0, r.output
    assert _load(tmp_path / "o", "hub")["benchmark"]["revision"] == revision


def test_nothing_scorable_exits_1(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    (root / "annotations.json").write_text(
        json.dumps({"images/indoor/gone.jpg": [{"point1": [0, 0], "point2": [1, 1], "closer_point": "point1"}]})
    )
    r = _run("--model", f"precomputed:{root}", "--kind", "depth", "--data", str(root), "--out", str(tmp_path / "o"))
    assert r.exit_code == 1 and "nothing could be scored" in r.output and "1 image missing from the folder" in r.output
    assert "Traceback" not in r.output
