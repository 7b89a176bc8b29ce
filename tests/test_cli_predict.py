"""`da2k predict` end to end on real photos with a checkpoint saved from build_model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from da2k.cli import main
from da2k.models import build_model

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    shutil.copy(FIXTURES / "demo01.jpg", root / "demo01.jpg")
    Image.open(FIXTURES / "demo01.jpg").resize((300, 200)).save(root / "sub" / "small.png")
    data = (FIXTURES / "demo01.jpg").read_bytes()
    (root / "corrupt.jpg").write_bytes(data[: len(data) // 3])
    weights = root.parent / "tiny.pth"
    torch.manual_seed(0)
    torch.save(build_model("vit-tiny").state_dict(), weights)
    return root, weights


def _run(*args):
    return CliRunner().invoke(main, ["predict", *map(str, args)])


def test_predict_writes_one_map_per_image_and_reports_the_corrupt_one(photos, tmp_path):
    root, weights = photos
    out = tmp_path / "out"
    result = _run(
        root, "--model", "vit-tiny", "--weights", weights, "--input-size", "56", "--out", out, "--device", "cpu"
    )
    assert result.exit_code == 1
    assert "corrupt.jpg" in result.output and "1 image(s) failed" in result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy")) == ["demo01.npy", "sub/small.npy"]
    depth = np.load(out / "demo01.npy")
    assert depth.shape == (1362, 2048) and depth.dtype == np.float32
    assert np.load(out / "sub" / "small.npy").shape == (200, 300)


def test_predict_resumes_keeps_its_own_maps_and_refuses_to_replace_others_unless_asked(photos, tmp_path):
    root, weights = photos
    image = root / "sub" / "small.png"
    args = (image, "--model", "vit-tiny", "--weights", weights, "--input-size", "56", "--out", tmp_path)
    assert _run(*args, "--format", "png16").exit_code == 0
    before = (tmp_path / "small.png").stat().st_mtime_ns
    again = _run(*args, "--format", "png16")  # same settings: nothing to do, the map is kept
    assert again.exit_code == 0 and "wrote 0 depth map(s)" in again.output and "1 already there" in again.output
    assert (tmp_path / "small.png").stat().st_mtime_ns == before
    refused = _run(*args, "--format", "color")  # other settings would write over the png16 map
    assert refused.exit_code == 1 and "--overwrite" in refused.output
    assert (tmp_path / "small.png").stat().st_mtime_ns == before
    assert _run(*args, "--format", "png16", "--overwrite").exit_code == 0
    assert (tmp_path / "small.png").stat().st_mtime_ns != before
    saved = np.asarray(Image.open(tmp_path / "small.png"))
    assert saved.dtype == np.uint16 and saved.max() == 65535 and saved.min() == 0


def test_color_format_writes_rgb_previews(photos, tmp_path):
    root, weights = photos
    result = _run(
        root / "sub",
        "--model",
        "vit-tiny",
        "--weights",
        weights,
        "--input-size",
        "42",
        "--out",
        tmp_path,
        "--format",
        "color",
    )
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "small.png").mode == "RGB"


def test_missing_input_and_unknown_model_are_one_line_errors(photos, tmp_path):
    root, weights = photos
    missing = _run(tmp_path / "nope.jpg", "--out", tmp_path)
    assert missing.exit_code == 1 and "does not exist" in missing.output
    unknown = _run(root, "--model", "vitz", "--out", tmp_path / "o")
    assert unknown.exit_code == 1 and "unknown model 'vitz'" in unknown.output
    assert "Traceback" not in missing.output + unknown.output


def test_help_lists_predict():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "predict" in result.output
    assert CliRunner().invoke(main, ["predict", "--help"]).exit_code == 0
