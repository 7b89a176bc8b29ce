import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from da2k.benchmark import load_benchmark, validate
from da2k.evaluate import evaluate
from da2k.predictors import PrecomputedPredictor
from da2k.synthetic import make_benchmark, render_scene, write_maps


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_benchmark(tmp_path_factory.mktemp("synth") / "bench", n_images=40, pairs_per_image=5, seed=3)


def _score(synth, tmp_path: Path, maps: Path, kind: str) -> dict:
    bench = load_benchmark(synth.root)
    out = tmp_path / f"out-{kind}"  # one result per (maps, kind): the default run name is the same for both kinds
    return evaluate(bench, PrecomputedPredictor(maps, kind), out, progress=False, cache_dir=tmp_path / "cache").result


def test_ground_truth_disparity_scores_100(synth, tmp_path):
    maps = write_maps(synth, tmp_path / "disp", lambda d: 1.0 / d)
    result = _score(synth, tmp_path, maps, "disparity")
    assert result["overall"]["correct"] == result["overall"]["n"] == 200


def test_ground_truth_depth_scores_100_as_depth(synth, tmp_path):
    assert _score(synth, tmp_path, synth.depth_dir, "depth")["overall"]["accuracy"] == 1.0


def test_ground_truth_depth_declared_as_disparity_scores_0(synth, tmp_path):
    assert _score(synth, tmp_path, synth.depth_dir, "disparity")["overall"]["correct"] == 0


def test_constant_map_scores_0(synth, tmp_path):
    maps = write_maps(synth, tmp_path / "const", lambda d: np.full((5, 7), 3.0))
    for kind in ("depth", "disparity"):
        assert _score(synth, tmp_path, maps, kind)["overall"]["correct"] == 0


def test_random_maps_score_near_half_within_the_interval(synth, tmp_path):
    rng = np.random.default_rng(0)
    maps = write_maps(synth, tmp_path / "random", lambda d: rng.random(d.shape))
    overall = _score(synth, tmp_path, maps, "disparity")["overall"]
    assert overall["ci95"][0] <= 0.5 <= overall["ci95"][1]
    assert 0.35 < overall["accuracy"] < 0.65


def test_sixteen_bit_png_ground_truth_scores_100(synth, tmp_path):
    maps = write_maps(synth, tmp_path / "png", lambda d: 1.0 / d, fmt="png16")
    assert next(maps.rglob("*.png")).is_file()
    assert _score(synth, tmp_path, maps, "disparity")["overall"]["accuracy"] == 1.0


def test_exif_rotated_images_store_rotated_pixels(synth):
    rotated = {k: o for k, o in synth.orientations.items() if o != 1}
    assert set(rotated.values()) >= {6, 8, 3}
    for key, orientation in rotated.items():
        with Image.open(synth.root / key) as raw:
            assert raw.getexif()[0x0112] == orientation
            stored_hw = (raw.height, raw.width)
        assert synth.depth(key).shape == (48, 64)
        assert stored_hw == ((64, 48) if orientation in (5, 6, 7, 8) else (48, 64))


def test_pairs_have_a_clear_gap_and_the_right_answer(synth):
    annotations = json.loads((synth.root / "annotations.json").read_text())
    assert validate(load_benchmark(synth.root)).ok
    closer_names = set()
    for key, pairs in annotations.items():
        depth = synth.depth(key)
        for p in pairs:
            closer, other = (p["point1"], p["point2"]) if p["closer_point"] == "point1" else (p["point2"], p["point1"])
            assert depth[tuple(other)] >= 1.25 * depth[tuple(closer)]
            closer_names.add(p["closer_point"])
    assert closer_names == {"point1", "point2"}
    assert len({k.split("/")[1] for k in annotations}) == 4


def test_generation_is_deterministic(tmp_path):
    a = make_benchmark(tmp_path / "a", n_images=3, seed=7)
    b = make_benchmark(tmp_path / "b", n_images=3, seed=7)
    assert (a.root / "annotations.json").read_text() == (b.root / "annotations.json").read_text()
    assert all(np.array_equal(a.depth(k), b.depth(k)) for k in a.keys)


def test_scene_depth_is_positive_and_has_several_surfaces():
    scene = render_scene(np.random.default_rng(0), (40, 50))
    assert scene.rgb.shape == (40, 50, 3) and scene.rgb.dtype == np.uint8
    assert (scene.depth > 0).all() and np.isfinite(scene.depth).all()
    assert len(np.unique(scene.surface)) >= 3
