import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from da2k.benchmark import SCENARIOS, load_benchmark, scenario_of, validate
from da2k.cli import main
from da2k.errors import Da2kError
from da2k.synthetic import make_benchmark


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    make_benchmark(tmp_path / "bench", n_images=6, pairs_per_image=3)
    return tmp_path / "bench"


def _rewrite(root: Path, edit) -> dict:
    path = root / "annotations.json"
    annotations = json.loads(path.read_text())
    edit(annotations)
    path.write_text(json.dumps(annotations))
    return annotations


def _zip(root: Path, target: Path, prefix: str) -> Path:
    with zipfile.ZipFile(target, "w") as z:
        for f in sorted(root.rglob("*")):
            if f.is_file() and "depth" not in f.parts:
                z.write(f, prefix + f.relative_to(root).as_posix())
    return target


def test_scenario_is_the_component_after_images():
    assert scenario_of("images/indoor/a.jpg") == "indoor"
    assert scenario_of("DA-2K/images/object/sub/a.jpg") == "object"
    assert scenario_of("indoor/a.jpg") is None
    assert scenario_of("images/a.jpg") is None
    assert len(SCENARIOS) == 8


def test_loads_folder_and_its_annotations_file(bench_dir):
    for source in (bench_dir, bench_dir / "annotations.json", bench_dir.parent):
        bench = load_benchmark(source)
        assert bench.name == "bench" and bench.n_pairs == 18 and len(bench.keys()) == 6


@pytest.mark.parametrize("prefix", ["", "DA-2K/"])
def test_loads_zip_in_place_with_or_without_top_folder(bench_dir, tmp_path, prefix):
    archive = _zip(bench_dir, tmp_path / "DA-2K.zip", prefix)
    before = set(tmp_path.rglob("*"))
    bench = load_benchmark(archive)
    assert bench.name == "DA-2K"
    assert bench.annotations == load_benchmark(bench_dir).annotations
    report = validate(bench)
    assert report.ok and len(report.sizes) == 6
    assert set(tmp_path.rglob("*")) == before  # nothing extracted


def test_images_decode_with_exif_orientation_applied(bench_dir):
    bench = load_benchmark(bench_dir)
    key = "images/outdoor/scene001.jpg"  # stored under orientation 6 (rotated)
    with Image.open(bench_dir / key) as raw:
        assert raw.size == (48, 64)  # stored pixels: W=48, H=64
    image = bench.load_image(key)
    assert image.mode == "RGB" and (image.height, image.width) == (48, 64)


def test_point_inside_exif_frame_but_outside_stored_frame_is_valid(bench_dir):
    _rewrite(
        bench_dir,
        lambda a: a["images/outdoor/scene001.jpg"].append(
            {"point1": [2, 60], "point2": [40, 3], "closer_point": "point1"}
        ),
    )
    report = validate(load_benchmark(bench_dir))
    assert report.ok, [str(p) for p in report.problems]


def test_validate_lists_every_problem_with_its_location_and_severity(bench_dir):
    def break_it(a):
        keys = list(a)
        a[keys[0]][0]["closer_point"] = "point3"
        a[keys[0]][1]["point2"] = [48, 10]  # row 48 of a 48-row image
        a[keys[0]][2]["point2"] = list(a[keys[0]][2]["point1"])  # identical points
        a[keys[1]][0]["point1"] = [1, "x"]
        del a[keys[1]][1]["point2"]
        a[keys[1]][2] = "not a pair"
        a["images/indoor/missing.jpg"] = [{"point1": [0, 0], "point2": [1, 1], "closer_point": "point1"}]
        a["images/mystery/scene002.png"] = a.pop(keys[2])
        a["images/indoor/notalist.png"] = {"point1": [0, 0]}

    _rewrite(bench_dir, break_it)
    (bench_dir / "images/mystery").mkdir()
    (bench_dir / "images/object/scene002.png").rename(bench_dir / "images/mystery/scene002.png")
    (bench_dir / "images/indoor/notalist.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    report = validate(load_benchmark(bench_dir))
    where = [(p.key.split("/")[-1], p.pair_index, p.severity) for p in report.problems]
    assert where == [
        ("scene000.png", 0, "error"),
        ("scene000.png", 1, "error"),
        ("scene000.png", 2, "error"),
        ("scene001.jpg", 0, "error"),
        ("scene001.jpg", 1, "error"),
        ("scene001.jpg", 2, "error"),
        ("missing.jpg", None, "error"),
        ("scene002.png", None, "warning"),
        ("notalist.png", None, "error"),
        ("notalist.png", None, "error"),
    ]
    messages = [p.message for p in report.problems]
    assert "closer_point" in messages[0] and "outside the 48x64 image" in messages[1]
    assert "same point" in messages[2] and "[row, col]" in messages[3]
    assert "point2 is missing" in messages[4] and "not found" in messages[6]
    assert "unknown scenario 'mystery'" in messages[7] and "--allow-scenario mystery" in messages[7]
    assert "does not decode" in messages[8] and "list of pairs" in messages[9]
    assert str(report.problems[0]).startswith("images/indoor/scene000.png pair 0: ")
    assert str(report.problems[7]).startswith("images/mystery/scene002.png: warning: unknown scenario")
    assert [p.code for p in report.problems] == [
        "malformed", "outside", "identical", "malformed", "malformed", "malformed",
        "missing", "unknown_scenario", "undecodable", "not_list",
    ]  # fmt: skip
    # the mystery image is scored (a warning); the missing image's one pair is not
    assert report.is_valid("images/mystery/scene002.png") and not report.is_valid("images/indoor/missing.jpg")
    assert report.skipped_pairs(load_benchmark(bench_dir).annotations) == 3 + 3 + 1


def test_duplicate_swapped_and_contradictory_pairs_are_warnings(bench_dir):
    key = "images/indoor/scene000.png"
    base = {"point1": [5, 6], "point2": [20, 30], "closer_point": "point1"}
    repeats = [
        dict(base),  # duplicate
        {"point1": [20, 30], "point2": [5, 6], "closer_point": "point2"},  # swapped, same answer
        {"point1": [20, 30], "point2": [5, 6], "closer_point": "point1"},  # contradicts: other one closer
        dict(base, closer_point="point2"),  # contradicts, same order
    ]
    _rewrite(bench_dir, lambda a: a.update({key: [base, *repeats]}))
    report = validate(load_benchmark(bench_dir))
    assert [(p.pair_index, p.severity, p.code) for p in report.problems] == [
        (1, "warning", "duplicate"),
        (2, "warning", "swapped"),
        (3, "warning", "contradictory"),
        (4, "warning", "contradictory"),
    ]
    assert all("pair 0" in p.message for p in report.problems)
    assert not report.errors and all(report.is_valid(key, i) for i in range(5))


def test_allow_scenario_accepts_a_new_folder(bench_dir):
    _rewrite(bench_dir, lambda a: a.update({"images/mystery/scene000.png": a.pop("images/indoor/scene000.png")}))
    (bench_dir / "images/mystery").mkdir()
    (bench_dir / "images/indoor/scene000.png").rename(bench_dir / "images/mystery/scene000.png")
    assert not validate(load_benchmark(bench_dir)).ok
    assert validate(load_benchmark(bench_dir), allowed_scenarios=["mystery"]).ok


def test_truncated_image_is_reported(bench_dir):
    path = bench_dir / "images/outdoor/scene001.jpg"
    path.write_bytes(path.read_bytes()[:300])
    report = validate(load_benchmark(bench_dir))
    assert [(p.key, p.pair_index) for p in report.problems] == [("images/outdoor/scene001.jpg", None)]


def test_malformed_json_is_one_line_error(bench_dir):
    (bench_dir / "annotations.json").write_text('{"images/indoor/a.jpg": [')
    with pytest.raises(Da2kError, match=r"not valid JSON.*line 1"):
        load_benchmark(bench_dir)
    result = CliRunner().invoke(main, ["validate", str(bench_dir)])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_byte_order_mark_is_tolerated(bench_dir):
    path = bench_dir / "annotations.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_benchmark(bench_dir).n_pairs == 18


def test_top_level_must_be_an_object(bench_dir):
    (bench_dir / "annotations.json").write_text("[]")
    with pytest.raises(Da2kError, match="JSON object"):
        load_benchmark(bench_dir)


def test_missing_benchmark_is_a_clear_error(tmp_path):
    with pytest.raises(Da2kError, match="no benchmark"):
        load_benchmark(tmp_path / "nowhere")
    with pytest.raises(Da2kError, match="no annotations.json"):
        load_benchmark(tmp_path)


def test_offline_default_source_names_the_file_and_the_flag(monkeypatch):
    import huggingface_hub

    def offline(**kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("offline")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(Da2kError) as info:
        load_benchmark(None)
    message = str(info.value)
    assert "DA-2K.zip" in message and "--data" in message and "\n" not in message


def test_cli_validate_exit_codes(bench_dir):
    runner = CliRunner()
    ok = runner.invoke(main, ["validate", str(bench_dir)])
    assert ok.exit_code == 0 and "no problems" in ok.output
    first = "images/indoor/scene000.png"
    _rewrite(bench_dir, lambda a: a[first].append(dict(a[first][0])))  # a duplicate: a warning
    warned = runner.invoke(main, ["validate", str(bench_dir)])
    assert warned.exit_code == 0, warned.output
    assert f"{first} pair 3: warning: duplicate of pair 0" in warned.output
    assert "0 error(s) (0 pair(s) cannot be scored), 1 warning(s)" in warned.output
    assert runner.invoke(main, ["validate", str(bench_dir), "--strict"]).exit_code == 1
    _rewrite(bench_dir, lambda a: [a[k][0].update(closer_point="both") for k in list(a)[:2]])
    bad = runner.invoke(main, ["validate", str(bench_dir)])
    assert bad.exit_code == 1
    assert "images/indoor/scene000.png pair 0: closer_point" in bad.output
    assert "images/outdoor/scene001.jpg pair 0: closer_point" in bad.output
    assert "2 error(s) (2 pair(s) cannot be scored)" in bad.output


def test_zip_with_images_beside_a_nested_annotations_file(bench_dir, tmp_path):
    archive = tmp_path / "odd.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(bench_dir / "annotations.json", "meta/annotations.json")
        for f in sorted((bench_dir / "images").rglob("*.*")):
            z.write(f, f.relative_to(bench_dir).as_posix())
    assert validate(load_benchmark(archive)).ok
