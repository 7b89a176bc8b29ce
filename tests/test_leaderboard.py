"""`da2k leaderboard`: site contents against the inputs, determinism, no network, validation."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from leaderboard_helpers import (
    FIXTURES,
    cell,
    changed,
    label,
    make_bench,
    parse,
    row_labelled,
    scenario_cells,
    write_result,
)
from PIL import Image

from da2k.benchmark import load_benchmark
from da2k.cli import main
from da2k.errors import Da2kError
from da2k.leaderboard import build_site, load_result
from da2k.leaderboard.gallery import CLOSER_COLOUR, OTHER_COLOUR, make_thumbnail
from da2k.leaderboard.paper import load_paper_tables, packaged_tables_path
from da2k.leaderboard.ranking import mcnemar_matrix, rank_entries
from da2k.leaderboard.results import Entry, Score
from da2k.results import PairRow, read_pairs

MEASURED = {"vits": "Depth Anything V2 ViT-S · custom weights (sha aaaaaaaa)", "vitl": "Depth Anything V2 ViT-L"}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lb")
    build_site([FIXTURES], root / "site", images=make_bench(root))
    return root / "site"


def test_table_cells_match_the_result_files(site):
    rows = parse(site / "index.html").tables["da-2k-table"]
    for name, shown in MEASURED.items():
        data = json.loads((FIXTURES / f"{name}.json").read_text())
        row = row_labelled(rows, shown)
        overall, o = data["overall"], cell(row, "overall")
        assert float(o["attrs"]["data-value"]) == pytest.approx(overall["accuracy"])
        lo, hi = overall["ci95"]
        assert o["text"] == f"{100 * overall['accuracy']:.1f}{100 * lo:.1f}–{100 * hi:.1f}"
        assert o["attrs"]["title"] == f"{overall['correct']} of {overall['n']} pairs correct"
        for c, scenario in zip(scenario_cells(row), ["indoor", "outdoor", "non_real", "transparent_reflective"]):
            assert float(c["attrs"]["data-value"]) == pytest.approx(data["scenarios"][scenario]["accuracy"])
        assert cell(row, "date")["text"] == "2026-11-25"
    acme = row_labelled(rows, "Acme Depth (reported)")
    assert cell(acme, "overall")["text"].startswith("90.0") and cell(acme, "overall")["text"].endswith("†")
    assert scenario_cells(acme)[2]["attrs"]["data-value"] == ""  # no non-real number: shown as missing


def test_paper_rows_ship_with_the_package_and_their_citation():
    entries = {e.name: e for e in load_paper_tables()}
    table3 = {
        "Marigold": 86.8,
        "GeoWizard": 88.1,
        "DepthFM": 85.8,
        "Depth Anything V1": 88.5,
        "Depth Anything V2 ViT-S": 95.3,
        "Depth Anything V2 ViT-B": 97.0,
        "Depth Anything V2 ViT-L": 97.1,
        "Depth Anything V2 ViT-G": 97.4,
    }
    assert {n: round(100 * e.overall.accuracy, 1) for n, e in entries.items()} == table3
    assert json.loads(packaged_tables_path().read_text())["table3"] == table3
    assert "2406.09414" in json.loads(packaged_tables_path().read_text())["source"]
    assert all(e.provenance == "reported" and "Depth Anything V2" in e.citation for e in entries.values())
    vitl = entries["Depth Anything V2 ViT-L"]
    assert vitl.model_id == "vitl" and len(vitl.scenarios) == 8
    assert vitl.scenarios["transparent_reflective"].accuracy == pytest.approx(0.963)
    assert vitl.scenarios["non_real"].accuracy == pytest.approx(0.990)
    assert entries["Depth Anything V2 ViT-G"].scenarios == {}
    assert entries["Marigold"].latency_ms == 5200.0 and "V100" in entries["Marigold"].latency_note


def test_only_official_weights_share_a_group_with_the_paper_row(site):
    rows = parse(site / "index.html").tables["da-2k-table"]
    groups = {label(r): r["attrs"]["data-group"] for r in rows}
    # vitl.json's checkpoint came from the official hub repo: same group as the paper's ViT-L
    assert groups["Depth Anything V2 ViT-L"] == groups["Depth Anything V2 ViT-L (reported)"] == "vitl"
    assert row_labelled(rows, "Depth Anything V2 ViT-L")["attrs"]["data-weights"] == "official"
    # vits.json's is a local file: custom weights, a group of its own
    custom = row_labelled(rows, MEASURED["vits"])
    assert custom["attrs"]["data-weights"] == "custom" and custom["attrs"]["data-group"] != "vits"
    assert [g for g in groups.values()].count(custom["attrs"]["data-group"]) == 1


def _entry(name: str, acc: float, ci: tuple[float, float] | None, partial: bool = False) -> Entry:
    return Entry("measured", name, name, name, "DA-2K", Score(acc, ci95=ci), None, {}, partial=partial)


def test_rank_is_shared_with_approx_sign_only_when_intervals_overlap():
    rows = rank_entries(
        [
            _entry("c", 0.80, (0.78, 0.82)),
            _entry("a", 0.97, (0.96, 0.98)),
            _entry("b", 0.965, (0.955, 0.975)),
        ]
    )
    assert [(r.entry.name, r.rank, r.tied) for r in rows] == [("a", 1, True), ("b", 1, True), ("c", 3, False)]


def test_partial_runs_cannot_be_ranked_with_full_runs():
    with pytest.raises(ValueError, match="partial"):
        rank_entries([_entry("full", 0.9, (0.85, 0.95)), _entry("part", 0.99, (0.5, 1.0), partial=True)])


def test_ranks_in_the_page_mark_ties(site):
    rows = parse(site / "index.html").tables["da-2k-table"]
    ranks = {label(r): cell(r, "rank")["text"] for r in rows}
    assert ranks["Depth Anything V2 ViT-G (reported)"] == "≈1"
    assert ranks["DepthFM (reported)"].startswith("≈")  # overlaps Marigold's interval
    assert int(ranks["DepthFM (reported)"][1:]) > 5


def test_mcnemar_matches_pairs_on_image_and_index_only():
    def o(correct):
        return PairRow("", 0, "indoor", 1.0, 0.0, correct)

    a = {("x.jpg", 0): o(True), ("x.jpg", 1): o(True), ("y.jpg", 0): o(False), ("z.jpg", 0): o(True)}
    b = {("y.jpg", 0): o(True), ("x.jpg", 1): o(False), ("x.jpg", 0): o(False)}
    test = mcnemar_matrix([a, b])[0][1]
    assert (test.n_common, test.a_only, test.b_only) == (3, 2, 1)
    assert test.p_value == pytest.approx(1.0)
    assert mcnemar_matrix([a, b])[1][0].a_only == 1


def test_build_twice_gives_identical_bytes(tmp_path):
    bench = make_bench(tmp_path)
    build_site([FIXTURES], tmp_path / "one", images=bench)
    build_site([FIXTURES], tmp_path / "two", images=bench)
    build_site([FIXTURES], tmp_path / "one", images=bench)  # a rebuild in place too
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    expected = {"figures/da-2k-mcnemar.svg", "gallery.html", "results/vits.pairs.csv", "leaderboard.csv"}
    assert {Path(p) for p in expected} <= set(files)
    for rel in files:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel
    svg = (tmp_path / "one" / "figures" / "da-2k-overall.svg").read_bytes()
    assert b"<dc:date>" not in svg and b"Matplotlib v" not in svg


def test_site_references_nothing_outside_itself(site):
    external = []
    for path in site.rglob("*"):
        if not path.is_file() or path.parts[len(site.parts)] == "results":
            continue  # results/ holds copies of the inputs, offered as downloads
        data = path.read_bytes()
        if path.suffix in (".css", ".js"):
            assert not re.search(rb"(?i)(https?:|ftp:|//[a-z0-9-]+\.[a-z]|@import|url\()", data), path
        elif path.suffix == ".svg":  # XML namespaces only: no link, image or font from anywhere
            assert not re.search(rb'(?i)(href="[^#]|url\((?!#)|@import)', data), path
        elif path.suffix in (".jpg", ".png"):
            assert b"http" not in data.lower(), path
    for page in ("index.html", "gallery.html"):
        for tag, attrs in parse(site / page).attrs_seen:
            for key in ("href", "src"):
                target = attrs.get(key)
                if not target or target.startswith("#"):
                    continue
                if tag == "a" and target.startswith("https://huggingface.co/"):
                    external.append(target)  # a model card: a link to follow, never fetched
                    assert attrs.get("rel") == "external noopener" and key == "href"
                    continue
                assert ":" not in target and not target.startswith("/"), (tag, target)
                assert (site / target.split("#")[0]).is_file(), target
    assert "https://huggingface.co/depth-anything/Depth-Anything-V2-Large" in external
    html = (site / "index.html").read_text()
    assert not re.search(r"(?i)<(img|script|link|iframe|source)[^>]+(src|href)=\"https?:", html)


def test_text_from_result_files_is_escaped(site):
    html = (site / "index.html").read_text(encoding="utf-8")
    assert "My &lt;b&gt;model&lt;/b&gt;" in html and "<b>model" not in html
    assert "A. Author, B. Author. Acme Depth. 2026 (example.org/acme)" in html


def test_table_markup_is_accessible(site):
    html = (site / "index.html").read_text(encoding="utf-8")
    assert "<caption" in html and '<th scope="col"' in html and '<th scope="row"' in html
    assert 'aria-sort="descending"' in html and html.count('<button type="button" class="sort">') == 16
    assert 'class="table-wrap" role="region"' in html
    assert '<label for="model-filter">' in html and 'class="group-toggle"' in html


def test_gallery_shows_pairs_missed_by_half_the_models_and_scenarios_link_to_it(site):
    html = (site / "index.html").read_text(encoding="utf-8")
    gallery = (site / "gallery.html").read_text(encoding="utf-8")
    assert "missed by at least half of the models" in gallery
    # pair 3 (images/aerial/aerial-1.jpg #1) is wrong for all three measured models
    first = gallery.index('<section id="aerial"')
    assert gallery.index("aerial-1.jpg</code> #1: missed by 3 of 3 models", first) > first
    assert 'href="gallery.html#aerial"' in html
    assert 'href="gallery.html#underwater"' not in html  # every model got underwater right
    assert (site / "thumbs" / "aerial-aerial-1-1.jpg").is_file()
    for n_wrong in re.findall(r"missed by (\d+) of 3 models", gallery):
        assert int(n_wrong) >= 2  # 1 of 3 is not "at least half"
    # the gallery names the models exactly as the table does
    assert "Depth Anything V2 ViT-S · custom weights (sha aaaaaaaa): wrong" in gallery


def test_thumbnail_applies_exif_orientation_and_marks_both_points(tmp_path):
    stored = Image.new("RGB", (800, 400), (128, 128, 128))  # landscape as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display -> 400 wide, 800 tall
    (tmp_path / "images" / "indoor").mkdir(parents=True)
    stored.save(tmp_path / "images" / "indoor" / "r.jpg", exif=exif.tobytes(), quality=95)
    annotations = {"images/indoor/r.jpg": [{"point1": [600, 100], "point2": [150, 280], "closer_point": "point2"}]}
    (tmp_path / "annotations.json").write_text(json.dumps(annotations))
    jpeg = make_thumbnail(load_benchmark(tmp_path), ("images/indoor/r.jpg", 0), side=160)
    thumb = Image.open(io.BytesIO(jpeg))
    assert thumb.size == (80, 160)  # oriented frame, scaled x0.2 (decoded at 1/4, then resized)

    def close(pixel, colour):
        return all(abs(p - c) < 40 for p, c in zip(pixel, colour))

    assert close(thumb.getpixel((56, 30)), CLOSER_COLOUR)  # (row 150, col 280) x0.2: the closer point
    assert close(thumb.getpixel((20, 120)), OTHER_COLOUR)
    assert close(thumb.getpixel((60, 100)), (128, 128, 128))


def _bad(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


VITL = json.loads((FIXTURES / "vitl.json").read_text())


def _with(**changes) -> str:
    return json.dumps(changed(VITL, **changes))


@pytest.mark.parametrize(
    "text, says",
    [
        ("{not json", "not valid JSON"),
        ('{"schema": "something/else"}', "schema is 'something/else'"),
        ("[1, 2]", "must be an object"),
        (_with(overall={"accuracy": 97.1}), "not a fraction"),
        (json.dumps({**json.loads((FIXTURES / "acme-reported.json").read_text()), "citation": None}), "citation"),
        (_with(pairs_file="../x.csv"), "must be a path inside the result's folder"),
        (_with(pairs_file="/etc/passwd"), "must be a path inside the result's folder"),
        (_with(overall={**VITL["overall"], "scenario_mean": 42}), "scenario_mean' is 42"),
        (_with(model={**VITL["model"], "n_params": -5}), "model.n_params' is -5"),
        (_with(latency_ms=-1.0), "latency_ms' is -1.0"),
        (_with(overall={**VITL["overall"], "n": -16}), "non-negative integer"),
        (_with(benchmark={**VITL["benchmark"], "n_pairs": 10}), "more than the benchmark's n_pairs 10"),
        (_with(benchmark={**VITL["benchmark"], "annotations_sha256": "abc"}), "64 lowercase hex"),
        (_with(complete="yes"), "'complete' must be true or false"),
    ],
)
def test_malformed_result_is_a_one_line_error_naming_the_file(tmp_path, text, says):
    bad = _bad(tmp_path, "bad.json", text)
    shutil.copy(FIXTURES / "vitl.pairs.csv", tmp_path)
    for args in (
        ["build", str(bad), "--out", str(tmp_path / "site")],
        ["add-result", str(bad), "--results-dir", str(tmp_path / "r")],
    ):
        result = CliRunner().invoke(main, ["leaderboard", *args])
        assert result.exit_code == 1
        assert str(bad) in result.output and says in result.output
        assert "Traceback" not in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "site").exists() and not (tmp_path / "r").exists()


def test_a_pairs_file_link_out_of_the_results_folder_is_refused(tmp_path):
    (tmp_path / "secret.csv").write_text((FIXTURES / "vitl.pairs.csv").read_text())
    results = tmp_path / "results"
    results.mkdir()
    (results / "vitl.pairs.csv").symlink_to(tmp_path / "secret.csv")
    _bad(results, "vitl.json", _with(pairs_file="vitl.pairs.csv"))
    with pytest.raises(Da2kError, match="a link that leaves the result's folder"):
        build_site([results], tmp_path / "site")


def test_pairs_file_disagreeing_with_its_result_is_rejected(tmp_path):
    shutil.copy(FIXTURES / "vits.json", tmp_path)
    (tmp_path / "vits.pairs.csv").write_text((FIXTURES / "vitl.pairs.csv").read_text())
    with pytest.raises(Da2kError, match="vits.pairs.csv: 15 of 16 pairs correct"):
        build_site([tmp_path], tmp_path / "site", include_reported=False)


def test_build_refuses_to_empty_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "notes.txt").write_text("mine")
    with pytest.raises(Da2kError, match="not empty"):
        build_site([FIXTURES / "vits.json"], tmp_path / "site")
    assert (tmp_path / "site" / "notes.txt").read_text() == "mine"


def test_stamp_is_the_only_clock_in_the_output(tmp_path):
    build_site([FIXTURES / "vits.json"], tmp_path / "a", stamp=True)
    build_site([FIXTURES / "vits.json"], tmp_path / "b")
    assert re.search(r"Built \d{4}-\d\d-\d\d \d\d:\d\d UTC", (tmp_path / "a" / "index.html").read_text())
    assert "Built 2" not in (tmp_path / "b" / "index.html").read_text()


def test_add_result_copies_the_file_and_its_pairs_and_refuses_to_overwrite(tmp_path):
    runner = CliRunner()
    target = tmp_path / "results"
    result = runner.invoke(
        main, ["leaderboard", "add-result", str(FIXTURES / "vits.json"), "--results-dir", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert "overall 81.2%" in result.output
    assert (target / "vits.json").read_bytes() == (FIXTURES / "vits.json").read_bytes()
    assert (target / "vits.pairs.csv").is_file()
    again = runner.invoke(
        main, ["leaderboard", "add-result", str(FIXTURES / "vits.json"), "--results-dir", str(target)]
    )
    assert again.exit_code == 1 and "--force" in again.output
    forced = runner.invoke(
        main, ["leaderboard", "add-result", str(FIXTURES / "vits.json"), "--results-dir", str(target), "--force"]
    )
    assert forced.exit_code == 0
    built = runner.invoke(main, ["leaderboard", "build", str(target), "--out", str(tmp_path / "site"), "--no-reported"])
    assert built.exit_code == 0, built.output
    assert len(parse(tmp_path / "site" / "index.html").rows) == 1


def test_pairs_file_columns_are_read_by_name_and_extra_ones_ignored(tmp_path):
    text = (FIXTURES / "vits.pairs.csv").read_text()
    (tmp_path / "vits.pairs.csv").write_text(
        text.replace("\n", ",point1\n").replace("correct,point1", "correct,closer_point")
    )
    outcomes = read_pairs(tmp_path / "vits.pairs.csv")
    assert len(outcomes) == 16 and outcomes[("images/aerial/aerial-1.jpg", 1)].correct is False
    (tmp_path / "renamed.pairs.csv").write_text(text.replace("image,pair_index", "key,pair_index", 1))
    with pytest.raises(Da2kError, match="missing columns: image"):
        read_pairs(tmp_path / "renamed.pairs.csv")


def test_readme_example_of_a_reported_result_is_valid(tmp_path):
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Leaderboard") :]
    example = re.search(r"```json\n(.*?)```", section, re.S).group(1)
    entry = load_result(_bad(tmp_path, "mine.json", example))
    assert entry.provenance == "reported" and entry.overall.ci_approx
    assert entry.latency_ms == 48.0 and "A100" in entry.latency_note


def test_missing_interval_comes_from_counts_when_there_are_counts(tmp_path):
    data = json.loads((FIXTURES / "vitl.json").read_text())
    del data["overall"]["ci95"], data["scenarios"]["aerial"]["ci95"]
    shutil.copy(FIXTURES / "vitl.pairs.csv", tmp_path)
    entry = load_result(_bad(tmp_path, "vitl.json", json.dumps(data)))
    assert entry.overall.ci95 == pytest.approx(json.loads((FIXTURES / "vitl.json").read_text())["overall"]["ci95"])
    assert not entry.overall.ci_approx
    assert entry.scenarios["aerial"].ci95 == pytest.approx((0.0945, 0.9055), abs=1e-4)  # Wilson, 1 of 2


def test_a_failed_rebuild_leaves_the_previous_site_untouched(tmp_path):
    build_site([FIXTURES / "vits.json"], tmp_path / "site")
    before = (tmp_path / "site" / "index.html").read_bytes()
    with pytest.raises(Da2kError, match="annotations.json"):
        build_site([FIXTURES], tmp_path / "site", images=tmp_path / "no-such-bench")
    assert (tmp_path / "site" / "index.html").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no half-built folder left behind


def test_a_run_over_part_of_the_benchmark_says_so_in_its_row(tmp_path):
    write_result(
        tmp_path,
        "vitl",
        benchmark={**VITL["benchmark"], "n_pairs": 2068},
        selection={"scenarios": ["indoor"], "limit": None},
        skipped_invalid={"pairs": 3, "images": 1, "problems": []},
    )
    build_site([tmp_path / "vitl.json"], tmp_path / "site", include_reported=False)
    page = parse(tmp_path / "site" / "index.html")
    assert page.tables["da-2k-table"] == []  # nothing ranked: the only run is partial
    text = cell(page.tables["da-2k-partial-table"][0], "model")["text"]
    assert "scored 16 of 2068 pairs" in text and "scenarios: indoor" in text
    assert "3 invalid pairs skipped" in text
