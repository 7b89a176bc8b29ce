"""Export to the official DA-2K format and import from it."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from annotate_helpers import answer_stored
from click.testing import CliRunner
from mining_helpers import make_scenes
from sqlalchemy import select

from da2k.benchmark import load_benchmark, validate
from da2k.cli import main
from da2k.errors import Da2kError
from da2k.export import export_benchmark
from da2k.importing import import_benchmark
from da2k.mining import mine
from da2k.store import Image, Pair, Store


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    """Scenes mined by gt, noisy and flipped experts, one needs_human pair resolved by humans."""
    root = tmp_path_factory.mktemp("export")
    scenes = make_scenes(root)
    store = Store(root / "m.db")
    mine(
        store,
        scenes.images,
        scenes.specs("gt", "noisy", "flipped"),
        pairs_per_image=4,
        audit_rate=0.0,
        points="felzenszwalb",
        progress=False,
    )
    with store.read() as s:
        waiting = list(s.scalars(select(Pair.id).where(Pair.status == "needs_human").order_by(Pair.id)))
    for annotator in ("a", "b", "c"):
        assert answer_stored(store, annotator, "point2") == waiting[0]  # the oldest waiting pair first
    with store.write() as s:
        s.get(Pair, waiting[1]).status = "discarded"
    yield scenes, store, waiting[0]
    store.close()


def exported_pairs(out) -> set[tuple]:
    data = json.loads((out / "annotations.json").read_text())
    return {
        (key, tuple(p["point1"]), tuple(p["point2"]), p["closer_point"]) for key, pairs in data.items() for p in pairs
    }


def test_export_holds_only_settled_pairs_with_the_closer_point_first(mined, tmp_path):
    scenes, store, resolved_id = mined
    report = export_benchmark(store, tmp_path / "out", progress=False)
    with store.read() as s:
        settled = s.execute(
            select(Image.path, Pair.p1_row, Pair.p1_col, Pair.p2_row, Pair.p2_col, Pair.answer, Pair.id)
            .join(Image, Pair.image_id == Image.id)
            .where(Pair.status.in_(("auto_agreed", "resolved")))
        ).all()
    expected = set()
    for path, a, b, c, d, answer, pair_id in settled:
        closer, other = ((a, b), (c, d)) if answer == "point1" else ((c, d), (a, b))
        expected.add((f"images/{path}", closer, other, "point1"))
        if pair_id == resolved_id:
            assert answer == "point2"  # the humans' answer, now written as point1
        else:  # agreed by all experts, the exact one included: truly closer
            depth = scenes.depth(path)
            assert depth[closer] < depth[other]
    assert exported_pairs(tmp_path / "out") == expected and report.pairs == len(expected)
    first = next(iter(expected))[0]
    assert (tmp_path / "out" / first).stat().st_ino == (scenes.images.parent / first).stat().st_ino  # hard link


def test_export_passes_validate_and_scores_with_evaluate(mined, tmp_path):
    scenes, store, _ = mined
    runner = CliRunner()
    out = tmp_path / "bench"
    assert runner.invoke(main, ["export", "--db", store.url, "--out", str(out), "--copy"]).exit_code == 0
    check = runner.invoke(main, ["validate", str(out)])
    assert check.exit_code == 0, check.output
    assert validate(load_benchmark(out)).ok
    accuracy = {}
    for name in ("gt", "constant"):
        maps = scenes.maps[name].parent
        result = runner.invoke(
            main,
            [
                "evaluate",
                "--model",
                f"precomputed:{maps}",
                "--kind",
                "depth",
                "--data",
                str(out),
                "--out",
                str(tmp_path / "results"),
                "--run",
                f"{name}-bench",
            ],
        )
        assert result.exit_code == 0, result.output
        accuracy[name] = json.loads((tmp_path / "results" / f"{name}-bench.json").read_text())["overall"]
    n_pairs = len(exported_pairs(out))
    assert accuracy["gt"]["n"] == n_pairs and accuracy["constant"]["n"] == n_pairs
    assert accuracy["constant"]["accuracy"] == 0.0
    # Every exported pair but the one humans answered against the truth is ordered right by GT.
    assert accuracy["gt"]["correct"] >= n_pairs - 1


def test_import_loads_pairs_as_gold_and_export_gives_them_back(tmp_path):
    scenes = make_scenes(tmp_path / "s", n_images=4)
    original = load_benchmark(scenes.bench.root)
    runner = CliRunner()
    db = str(tmp_path / "i.db")
    first = runner.invoke(main, ["import-benchmark", str(scenes.bench.root), "--db", db])
    assert first.exit_code == 0 and f"{original.n_pairs} pairs added" in first.output
    again = runner.invoke(main, ["import-benchmark", str(scenes.bench.root), "--db", db])
    assert "0 pairs added" in again.output
    with Store(db) as store:
        with store.read() as s:
            pairs = list(s.scalars(select(Pair)))
        assert all(p.source == "imported" and p.is_gold and p.status == "resolved" for p in pairs)
        export_benchmark(store, tmp_path / "out", progress=False)
    expected = {(p.key, tuple(p.closer), tuple(p.other), "point1") for k in original.keys() for p in original.pairs(k)}
    assert exported_pairs(tmp_path / "out") == expected


def test_import_for_reannotation_queues_pairs_for_humans(tmp_path):
    scenes = make_scenes(tmp_path / "s", n_images=2)
    with Store(tmp_path / "r.db") as store:
        import_benchmark(store, scenes.bench.root, status="needs_human", progress=False)
        with store.read() as s:
            pairs = list(s.scalars(select(Pair)))
        export = export_benchmark(store, tmp_path / "out", progress=False)
    assert {p.status for p in pairs} == {"needs_human"} and all(p.reference_answer for p in pairs)
    assert export.pairs == 0


def test_import_of_a_zip_extracts_its_images(tmp_path):
    scenes = make_scenes(tmp_path / "s", n_images=2)
    archive = shutil.make_archive(str(tmp_path / "DA-mini"), "zip", scenes.bench.root.parent, "bench")
    with Store(tmp_path / "z.db") as store:
        report = import_benchmark(store, archive, progress=False)
        export_benchmark(store, tmp_path / "out", progress=False)
    assert report.pairs_added == load_benchmark(scenes.bench.root).n_pairs
    assert validate(load_benchmark(tmp_path / "out")).ok


def test_export_finds_moved_images_under_images_root(mined, tmp_path):
    scenes, store, _ = mined
    moved = tmp_path / "moved"
    shutil.copytree(scenes.images, moved)
    with store.write() as s:
        originals = {image.id: image.root for image in s.scalars(select(Image))}
        for image in s.scalars(select(Image)):
            image.root = str(tmp_path / "gone")
    try:
        with pytest.raises(Da2kError, match="--images-root"):
            export_benchmark(store, tmp_path / "a", progress=False)
        report = export_benchmark(store, tmp_path / "b", images_root=moved, progress=False)
        assert report.pairs == len(exported_pairs(tmp_path / "b")) > 0
    finally:
        with store.write() as s:
            for image in s.scalars(select(Image)):
                image.root = originals[image.id]


def test_a_flat_folder_is_mined_with_a_warning_and_its_export_validates_and_scores(tmp_path, caplog):
    """README's chain mine -> export -> validate -> evaluate on photos kept in one folder."""
    scenes = make_scenes(tmp_path / "s", n_images=4)
    flat = tmp_path / "photos"
    flat.mkdir()
    for path in scenes.images.rglob("*.*"):
        shutil.copy(path, flat / path.name)
    experts = []
    for name in ("gt", "noisy"):  # precomputed maps mirror the images folder: flat too
        maps = tmp_path / "maps" / name
        maps.mkdir(parents=True)
        for path in scenes.maps[name].rglob("*.npy"):
            shutil.copy(path, maps / path.name)
        experts += ["--expert", f"precomputed:{maps};kind=depth"]
    db, out = tmp_path / "flat.db", tmp_path / "bench"
    runner = CliRunner()
    mined = runner.invoke(
        main,
        ["mine", "--images", str(flat), "--db", str(db), "--points", "felzenszwalb", "--audit-rate", "0", *experts],
    )  # fmt: skip
    assert mined.exit_code == 0, mined.output
    assert "scenario is the folder's name, 'photos'" in caplog.text and "--scenario NAME" in caplog.text
    assert runner.invoke(main, ["export", "--db", str(db), "--out", str(out)]).exit_code == 0
    assert json.loads((out / "da2k-export.json").read_text())["scenarios"] == ["photos"]
    assert all(key.startswith("images/photos/") for key in json.loads((out / "annotations.json").read_text()))
    check = runner.invoke(main, ["validate", str(out)])  # no --allow-scenario photos needed
    assert check.exit_code == 0, check.output
    shutil.copytree(tmp_path / "maps" / "gt", tmp_path / "eval" / "photos")  # maps by <scenario>/<file>
    scored = runner.invoke(
        main, ["evaluate", "--model", f"precomputed:{tmp_path / 'eval'}", "--kind", "depth", "--data",
               str(out), "--out", str(tmp_path / "r"), "--scenarios", "photos", "--run", "flat"],
    )  # fmt: skip
    assert scored.exit_code == 0, scored.output
    assert json.loads((tmp_path / "r" / "flat.json").read_text())["overall"]["accuracy"] == 1.0


def test_export_refuses_a_foreign_folder_replaces_its_own_and_honours_the_umask(mined, tmp_path):
    scenes, store, _ = mined
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"a photo")
    with pytest.raises(Da2kError, match="--force"):
        export_benchmark(store, photos, progress=False)
    assert sorted(p.name for p in photos.iterdir()) == ["holiday.jpg"]
    old = os.umask(0o027)
    try:
        export_benchmark(store, tmp_path / "out", link=False, progress=False)
        again = export_benchmark(store, tmp_path / "out", link=False, progress=False)  # its own: replaced
    finally:
        os.umask(old)
    assert again.pairs == len(exported_pairs(tmp_path / "out"))
    for path in [tmp_path / "out" / "annotations.json", *(tmp_path / "out" / "images").rglob("*.*")]:
        assert path.stat().st_mode & 0o777 == 0o640, path
    forced = export_benchmark(store, photos, force=True, progress=False)
    assert (photos / "holiday.jpg").read_bytes() == b"a photo" and forced.pairs == again.pairs
