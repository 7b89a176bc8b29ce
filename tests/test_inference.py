"""Preprocessing, single-image inference and the prefetching batch path."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from da2k.models import (
    ModelError,
    autocast_dtype,
    build_model,
    infer,
    infer_lowres,
    load_image,
    network_size,
    predict,
    runtime,
)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model("vit-tiny")


def _photo(h: int = 90, w: int = 120) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _save_with_orientation(path, array: np.ndarray, orientation: int) -> None:
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes())


@pytest.mark.parametrize(
    "hw, expected",
    [((1362, 2048), (518, 784)), ((518, 518), (518, 518)), ((2048, 1362), (784, 518)), ((100, 1000), (518, 5180))],
)
def test_network_size_follows_the_official_lower_bound_rule(hw, expected):
    assert network_size(*hw, 518) == expected


def test_network_size_is_a_multiple_of_14_and_at_least_the_input_size():
    for h, w in [(333, 500), (481, 641), (1000, 37), (17, 19)]:
        nh, nw = network_size(h, w, 518)
        assert nh % 14 == 0 and nw % 14 == 0 and min(nh, nw) >= 518


def test_exif_orientation_is_applied_on_load(tmp_path):
    array = _photo(60, 100)
    _save_with_orientation(tmp_path / "r.png", array, 6)  # stored landscape, shown portrait
    image = load_image(tmp_path / "r.png")
    assert image.size == (60, 100)  # (width, height) after a 90 degree turn
    np.testing.assert_array_equal(np.asarray(image), np.rot90(array, k=-1))


def test_infer_on_an_exif_rotated_file_equals_infer_on_the_upright_pixels(tiny, tmp_path):
    array = _photo(60, 100)
    _save_with_orientation(tmp_path / "r.png", array, 6)
    rotated = infer(tiny, tmp_path / "r.png", input_size=70)
    upright = infer(tiny, np.ascontiguousarray(np.rot90(array, k=-1)), input_size=70)
    assert rotated.shape == (100, 60)
    torch.testing.assert_close(rotated, upright)


def test_path_pil_and_array_inputs_agree(tiny, tmp_path):
    array = _photo()
    Image.fromarray(array).save(tmp_path / "a.png")
    a = infer(tiny, tmp_path / "a.png", input_size=56)
    b = infer(tiny, Image.fromarray(array), input_size=56)
    c = infer(tiny, array, input_size=56)
    assert a.shape == (90, 120)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_infer_is_the_bilinear_upsampling_of_the_low_resolution_output(tiny):
    low = infer_lowres(tiny, _photo(), input_size=56)
    assert low.values.shape == (56, 70) and low.size == (90, 120) and low.align_corners
    expected = torch.nn.functional.interpolate(low.values[None, None], (90, 120), mode="bilinear", align_corners=True)
    torch.testing.assert_close(infer(tiny, _photo(), input_size=56), expected[0, 0])


def test_v1_maps_back_with_align_corners_false():
    model = build_model("v1-vits")
    assert model.variant.align_corners is False
    low = infer_lowres(model, _photo(28, 28), input_size=28)
    assert low.align_corners is False


@pytest.mark.parametrize("content", [b"", b"\xff\xd8\xff\xe0 not really a jpeg", None])
def test_unreadable_images_raise_a_model_error_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.jpg"
    if content is None:
        full = tmp_path / "full.jpg"
        Image.fromarray(_photo(200, 200)).save(full, quality=95)
        content = full.read_bytes()[: len(full.read_bytes()) // 2]  # truncated JPEG
    path.write_bytes(content)
    with pytest.raises(ModelError, match="bad.jpg"):
        load_image(path)


def test_wrong_array_shape_is_rejected():
    with pytest.raises(ModelError, match="HxWx3 uint8"):
        load_image(np.zeros((10, 10), dtype=np.uint8))


def test_predict_keeps_order_and_yields_errors_per_item(tiny, tmp_path):
    paths = []
    for i in range(5):
        p = tmp_path / f"{i}.png"
        Image.fromarray(_photo(40 + 7 * i, 60)).save(p)
        paths.append(p)
    (tmp_path / "broken.png").write_bytes(b"nope")
    sources = paths[:2] + [tmp_path / "broken.png"] + paths[2:]
    results = list(predict(tiny, sources, input_size=42, device="cpu", precision="fp32", workers=2))
    assert [src for src, _ in results] == sources
    assert isinstance(results[2][1], ModelError)
    for src, low in results[:2] + results[3:]:
        torch.testing.assert_close(low.upsample(), infer(tiny, src, input_size=42))


def test_auto_precision_uses_bf16_only_with_native_support(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "native_bf16", lambda: False)
    assert autocast_dtype("auto", cpu) is None
    monkeypatch.setattr(runtime, "native_bf16", lambda: True)
    assert autocast_dtype("auto", cpu) is torch.bfloat16
    assert autocast_dtype("fp32", cpu) is None


def test_forced_bf16_on_a_cpu_without_it_warns_once(monkeypatch, caplog):
    monkeypatch.setattr(runtime, "native_bf16", lambda: False)
    monkeypatch.setattr(runtime, "_warned_bf16", False)
    with caplog.at_level(logging.WARNING, logger="da2k.models.runtime"):
        assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
        autocast_dtype("bf16", torch.device("cpu"))
    assert len([r for r in caplog.records if "native bf16" in r.message]) == 1


def test_bad_precision_and_device_are_user_errors():
    with pytest.raises(ModelError, match="fp16 is for GPUs"):
        autocast_dtype("fp16", torch.device("cpu"))
    with pytest.raises(ModelError, match="unknown precision"):
        autocast_dtype("fp8", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA"):
            runtime.select_device("cuda")


def test_bf16_stays_close_to_fp32(tiny):
    a = infer(tiny, _photo(), input_size=56)
    b = infer(tiny, _photo(), input_size=56, precision="bf16")
    assert b.dtype == torch.float32
    assert (a - b).abs().max() <= 0.05 * a.abs().max()
