"""Who a leaderboard row is: whose weights it measured, on which annotation file, over all of it or not."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from leaderboard_helpers import FIXTURES, cell, label, make_bench, parse, row_labelled, write_result

from da2k.cli import main
from da2k.leaderboard import build_site, load_result
from da2k.models import build_model, checkpoint_source, get_variant
from da2k.synthetic import make_benchmark, write_maps

VITL = json.loads((FIXTURES / "vitl.json").read_text())
FIXTURE_SHA = VITL["benchmark"]["annotations_sha256"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DA2K_CACHE_DIR", str(tmp_path / "cache"))


def _evaluate(*args: str) -> dict:
    result = CliRunner().invoke(main, ["evaluate", "--device", "cpu", "--precision", "fp32", *args])
    assert result.exit_code == 0, result.output
    out = Path(args[args.index("--out") + 1])
    return json.loads(next(out.glob("*.json")).read_text())


def _random_vits(path: Path) -> Path:
    """A vits checkpoint of random weights (fp16 to halve the file; loading casts to fp32)."""
    torch.manual_seed(0)
    torch.save({k: v.half() for k, v in build_model("vits").state_dict().items()}, path)
    return path


def test_evaluate_records_weights_source_params_and_latency(tmp_path, tiny_weights):
    bench = make_benchmark(tmp_path / "bench", n_images=4, pairs_per_image=2)
    args = ["--model", "vit-tiny", "--weights", str(tiny_weights), "--data", str(bench.root), "--input-size", "56"]
    result = _evaluate(*args, "--out", str(tmp_path / "out"))
    model = result["model"]
    assert model["checkpoint_source"] == "local file"
    assert model["n_params"] == sum(p.numel() for p in build_model("vit-tiny").parameters()) == 702529
    assert result["latency_ms"] > 0
    assert result["latency"]["images"] == 4 and result["latency"]["precision"] == "fp32"
    assert result["latency"]["input_size"] == 56 and result["latency"]["hardware"]
    assert str(tiny_weights.parent) not in next((tmp_path / "out").glob("vit-tiny-*-bench.json")).read_text()
    again = _evaluate(*args, "--out", str(tmp_path / "again"))  # every image from the cache: nothing timed
    assert "latency_ms" not in again and again["model"]["n_params"] == 702529


def test_checkpoint_source_names_the_hub_repo_only_for_files_in_its_cache(tmp_path):
    vits = get_variant("vits")
    cached = tmp_path / "hub" / "models--depth-anything--Depth-Anything-V2-Small" / "snapshots" / "abc123"
    assert checkpoint_source(vits, cached / "depth_anything_v2_vits.pth") == (
        "hub:depth-anything/Depth-Anything-V2-Small@abc123/depth_anything_v2_vits.pth"
    )
    assert checkpoint_source(vits, tmp_path / "depth_anything_v2_vits.pth") == "local file"
    other_repo = tmp_path / "hub" / "models--someone--Depth-Anything-V2-Small" / "snapshots" / "abc123" / "w.pth"
    assert checkpoint_source(vits, other_repo) == "local file"
    assert checkpoint_source(get_variant("vitg"), cached / "depth_anything_v2_vitg.pth") == "local file"


def test_weights_resolved_from_the_hub_cache_are_recorded_as_official(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from da2k.predictors.ours import DepthAnythingPredictor

    repo = tmp_path / "hub" / "models--depth-anything--Depth-Anything-V2-Small"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision).mkdir(parents=True)
    _random_vits(repo / "snapshots" / revision / "depth_anything_v2_vits.pth")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    described = DepthAnythingPredictor("vits", device="cpu", precision="fp32").describe()
    assert described["checkpoint_source"] == (
        f"hub:depth-anything/Depth-Anything-V2-Small@{revision}/depth_anything_v2_vits.pth"
    )
    assert described["n_params"] == 24785089


@pytest.fixture(scope="module")
def random_vits_site(tmp_path_factory) -> Path:
    """Random-weight vits scored on a synthetic benchmark whose folder is named DA-2K."""
    root = tmp_path_factory.mktemp("random-vits")
    bench = make_benchmark(root / "DA-2K", n_images=4, pairs_per_image=2)
    weights = _random_vits(root / "depth_anything_v2_vits.pth")
    args = ["--model", "vits", "--weights", str(weights), "--data", str(bench.root), "--input-size", "56"]
    result = CliRunner().invoke(
        main, ["evaluate", "--device", "cpu", "--precision", "fp32", *args, "--out", str(root / "results")]
    )
    assert result.exit_code == 0, result.output
    build_site([root / "results"], root / "site")
    return root / "site"


def test_random_weights_vits_on_a_benchmark_named_da2k_is_not_the_papers_v2_s(random_vits_site):
    rows = parse(random_vits_site / "index.html").tables["da-2k-table"]
    measured = [r for r in rows if r["attrs"]["data-provenance"] == "measured"]
    assert len(measured) == 1
    row = measured[0]
    sha = hashlib.sha256((random_vits_site.parent / "depth_anything_v2_vits.pth").read_bytes()).hexdigest()
    assert label(row) == f"Depth Anything V2 ViT-S · custom weights (sha {sha[:8]})"
    assert row["attrs"]["data-weights"] == "custom" and "model card" not in cell(row, "model")["text"]
    paper = row_labelled(rows, "Depth Anything V2 ViT-S (reported, Yang et al. 2024)")
    assert paper["attrs"]["data-group"] == "vits" != row["attrs"]["data-group"]
    assert [r["attrs"]["data-group"] for r in rows].count(row["attrs"]["data-group"]) == 1
    html = (random_vits_site / "index.html").read_text()
    assert 'data-weights="official" data-provenance="measured"' not in html


def test_a_checkpoint_with_the_sha256_of_an_official_download_counts_as_official(tmp_path):
    write_result(tmp_path, "hub")  # vitl.json: downloaded from the official repo
    copy = {**VITL["model"], "checkpoint_source": "local file"}
    write_result(tmp_path, "copy", model=copy)  # the same bytes, from a local copy
    write_result(tmp_path, "tuned", model={**copy, "checkpoint_sha256": "c" * 64})
    build_site([tmp_path], tmp_path / "site", include_reported=False)
    rows = parse(tmp_path / "site" / "index.html").tables["da-2k-table"]
    kinds = {label(r): (r["attrs"]["data-weights"], r["attrs"]["data-group"]) for r in rows}
    assert kinds["Depth Anything V2 ViT-L [hub]"] == kinds["Depth Anything V2 ViT-L [copy]"] == ("official", "vitl")
    assert (
        "same sha256 as a hub download" in cell(row_labelled(rows, "Depth Anything V2 ViT-L [copy]"), "model")["text"]
    )
    assert kinds["Depth Anything V2 ViT-L · custom weights (sha cccccccc)"][0] == "custom"


def test_the_run_name_labels_the_row_in_table_figures_and_gallery(tmp_path):
    name = r"my finetune $\alpha$ (run 3)"  # mathtext in a name must stay text
    model = {**VITL["model"], "checkpoint_source": "local file", "checkpoint_sha256": "d" * 64, "name": name}
    write_result(tmp_path / "results", "mine", model=model)
    write_result(tmp_path / "results", "vits", base="vits")
    build_site([tmp_path / "results"], tmp_path / "site", include_reported=False, images=make_bench(tmp_path))
    row = row_labelled(parse(tmp_path / "site" / "index.html").rows, name)
    assert "Depth Anything V2 ViT-L · custom weights (sha dddddddd)" in cell(row, "model")["text"]
    svg = (tmp_path / "site" / "figures" / "da-2k-overall.svg").read_text()
    assert r"my finetune $\alpha$ (run 3)" in svg and "<text" in svg
    assert f"{name}: wrong" in (tmp_path / "site" / "gallery.html").read_text()


def test_two_benchmarks_sharing_a_name_get_two_tables_and_separate_tests(tmp_path):
    other = "f" * 64
    results = tmp_path / "results"
    for base in ("vits", "vitl"):
        write_result(results, base, base=base)
        bench = {**json.loads((FIXTURES / f"{base}.json").read_text())["benchmark"], "annotations_sha256": other}
        write_result(results, f"{base}-other", base=base, benchmark=bench)
    build_site([results], tmp_path / "site")
    page = parse(tmp_path / "site" / "index.html")
    boards = {s["id"]: s for s in page.sections if "board" in (s.get("class") or "")}
    assert boards[f"da-2k-{FIXTURE_SHA[:8]}"]["data-annotations-sha256"] == FIXTURE_SHA
    assert boards["da-2k-ffffffff"]["data-annotations-sha256"] == other
    html = (tmp_path / "site" / "index.html").read_text()
    assert f">DA-2K · {FIXTURE_SHA[:8]}</h2>" in html and ">DA-2K · ffffffff</h2>" in html
    for sha in (FIXTURE_SHA[:8], "ffffffff"):
        rows = page.tables[f"da-2k-{sha}-table"]
        assert {r["attrs"]["data-provenance"] for r in rows} == {"measured"} and len(rows) == 2
        assert (tmp_path / "site" / "figures" / f"da-2k-{sha}-mcnemar.svg").is_file()
    # the paper cannot say which of the two files it used: its rows get a table of their own
    reported = page.tables["da-2k-reported-table"]
    assert reported and {r["attrs"]["data-provenance"] for r in reported} == {"reported"}
    mcnemar = re.findall(r"<caption>Exact McNemar.*?</tbody>", html, re.S)
    assert len(mcnemar) == 2 and all(m.count('<th scope="row">') == 2 for m in mcnemar)


def test_a_partial_run_is_listed_apart_and_never_ranked(tmp_path):
    results = tmp_path / "results"
    write_result(results, "vits", base="vits")  # full, 13 of 16
    write_result(results, "vitl-first4", selection={"scenarios": None, "limit": 4})  # partial, 15 of 16
    write_result(results, "vitl-incomplete", complete=False, model={**VITL["model"], "name": "incomplete run"})
    build_site([results], tmp_path / "site", include_reported=False)
    page = parse(tmp_path / "site" / "index.html")
    ranked, apart = page.tables["da-2k-table"], page.tables["da-2k-partial-table"]
    assert [label(r) for r in ranked] == ["Depth Anything V2 ViT-S · custom weights (sha aaaaaaaa)"]
    assert cell(ranked[0], "rank")["text"] == "1"  # alone among full runs: the better partial runs do not count
    assert sorted(label(r) for r in apart) == ["Depth Anything V2 ViT-L", "incomplete run"]
    assert all(cell(r, "rank")["text"] == "–" for r in apart)
    assert "first 4 images only" in cell(row_labelled(apart, "Depth Anything V2 ViT-L"), "model")["text"]
    html = (tmp_path / "site" / "index.html").read_text()
    assert "Partial runs of DA-2K (not ranked)</h3>" in html
    assert "incomplete run" not in (tmp_path / "site" / "figures" / "da-2k-overall.svg").read_text()


def test_no_absolute_path_of_the_build_machine_appears_in_the_site(tmp_path, tiny_weights):
    bench = make_benchmark(tmp_path / "bench", n_images=4, pairs_per_image=2)
    maps = write_maps(bench, tmp_path / "my maps", lambda d: d)
    results = tmp_path / "results"
    _evaluate("--model", f"precomputed:{maps}", "--kind", "depth", "--data", str(bench.root), "--out", str(results))
    tiny = ["--model", "vit-tiny", "--weights", str(tiny_weights), "--input-size", "56", "--run", "tiny"]
    CliRunner().invoke(main, ["evaluate", *tiny, "--data", str(bench.root), "--out", str(results), "--device", "cpu"])
    assert str(tmp_path) in next(results.glob("my-maps-*-bench.json")).read_text()  # the input records it...
    build_site([results], tmp_path / "site", images=bench.root)
    private = [str(tmp_path), str(tiny_weights.parent)]
    for path in (tmp_path / "site").rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace")
            assert not any(p in text for p in private), path  # ...the site does not
    html = (tmp_path / "site" / "index.html").read_text()
    assert "…/my maps" in html


def test_depth_anything_ac_is_a_second_source_with_its_caveats_and_condition_table(tmp_path):
    build_site([FIXTURES], tmp_path / "site")
    page = parse(tmp_path / "site" / "index.html")
    html = (tmp_path / "site" / "index.html").read_text()
    ac = row_labelled(page.tables["da-2k-table"], "Depth Anything AC (reported)")
    assert cell(ac, "overall")["text"].startswith("95.3")
    assert "its authors' own scorer, 1,029 images" in cell(ac, "model")["text"]
    assert re.search(r'<li id="ref-2">Boyuan Sun.*?1029 images', html, re.S)
    conditions = html[html.index('id="conditions-1"') :]
    assert "DA-2K under other conditions, reported by Sun et al. 2025" in conditions
    assert "DA-2K dark %" in conditions and conditions.count("<tr data-filter") == 9
    # --reported takes several files and replaces the packaged ones
    out = tmp_path / "only-ac"
    packaged = Path(load_result.__globals__["__file__"]).parents[1] / "da2k" / "data"
    args = ["leaderboard", "build", str(FIXTURES), "--out", str(out)]
    for name in ("depth_anything_ac_da2k.json", "da2k_paper_tables.json"):
        args += ["--reported", str(packaged / name)]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert "Sun et al. 2025" in (out / "index.html").read_text()
    assert "Yang et al. 2024" in (out / "index.html").read_text()


def test_downloads_hold_every_row_of_every_table(tmp_path):
    write_result(tmp_path / "results", "partial", selection={"scenarios": ["indoor"], "limit": None})
    build_site([FIXTURES, tmp_path / "results"], tmp_path / "site")
    page = parse(tmp_path / "site" / "index.html")
    with open(tmp_path / "site" / "leaderboard.csv", newline="") as f:
        records = list(csv.DictReader(f))
    data = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    assert len(records) == len(data["rows"]) == len(page.rows)
    assert sorted(r["label"] for r in records) == sorted(label(r) for r in page.rows)
    part = next(r for r in records if r["partial"] == "True")
    assert part["rank"] == "" and part["annotations_sha256"] == FIXTURE_SHA
    vitl = next(r for r in records if r["label"] == "Depth Anything V2 ViT-L [vitl]")  # [partial] too
    assert float(vitl["overall"]) == VITL["overall"]["accuracy"] and vitl["official"] == "True"
    assert data["reported_condition_tables"][0]["columns"][1] == "DA-2K dark"


def test_latency_is_shown_only_with_its_hardware_and_precision(tmp_path):
    latency = {"hardware": "NVIDIA H200", "precision": "fp16", "input_size": 518}
    write_result(tmp_path, "timed", latency_ms=12.0, latency=latency, model={**VITL["model"], "name": "timed"})
    write_result(tmp_path, "bare", latency_ms=9.0, hardware=None, model={**VITL["model"], "name": "bare"})
    build_site([tmp_path], tmp_path / "site")
    rows = parse(tmp_path / "site" / "index.html").rows
    assert cell(row_labelled(rows, "timed"), "latency")["text"] == "12 msNVIDIA H200 · fp16 · 518 px"
    bare = row_labelled(rows, "bare")["cells"][-2]  # the latency column: no hardware, so not shown
    assert bare["attrs"]["data-value"] == "" and "not known" in bare["text"]
    marigold = cell(row_labelled(rows, "Marigold (reported)"), "latency")["text"]
    assert marigold.startswith("5.2 s") and "V100 · precision not stated" in marigold
    html = (tmp_path / "site" / "index.html").read_text()
    assert "different machines here, so compare latencies only between rows on the same one" in html


def test_parameters_are_given_for_every_row_we_can_count():
    entry = load_result(FIXTURES / "vits.json")  # custom weights, no n_params recorded
    assert entry.n_params == 24785089 and entry.params_note == "counted from the architecture"
    from da2k.leaderboard.paper import load_reported

    counted = {e.name: e.n_params for e in load_reported().entries if e.model_id}
    assert counted["Depth Anything V2 ViT-G"] == 1258132225 and counted["Depth Anything V2 ViT-B"] == 97470785


@pytest.mark.parametrize(
    "text, shown",
    [
        ("precomputed:/data/my maps", "precomputed:…/my maps"),
        ('{"directory": "/home/me/maps"}', '{"directory": "…/maps"}'),
        ("C:\\Users\\me\\w.pth", "…/w.pth"),
        ("~/weights/x.pth", "…/x.pth"),
        ("see (/home/u/m.py)", "see (…/m.py)"),
        ("https://example.org/acme", "https://example.org/acme"),
        ("My <b>model</b>", "My <b>model</b>"),
        ("results/vits.json", "results/vits.json"),
        ("hub:depth-anything/Depth-Anything-V2-Small@abc/depth_anything_v2_vits.pth", None),
    ],
)
def test_redaction_shortens_local_paths_and_nothing_else(text, shown):
    from da2k.leaderboard.redact import redact

    assert redact(text) == (text if shown is None else shown)
