"""The one image loader, the one folder scanner and the one archive reader."""

from __future__ import annotations

import io
import json
import logging
import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from zip_helpers import entry, write_raw_zip

from da2k.benchmark import load_benchmark, validate
from da2k.errors import Da2kError
from da2k.images import MemberError, ModelError, decode_image, extract, image_size, open_archive, scan_images


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


# ---------------------------------------------------------------- the loader


@pytest.mark.parametrize("mode", ["P", "PA", "CMYK", "LA", "1", "L", "RGBA", "I;16", "I", "F"])
def test_every_common_mode_becomes_8_bit_rgb(mode):
    fmt = "TIFF" if mode in ("CMYK", "I", "F", "PA") else "PNG"
    buf = io.BytesIO()
    Image.new(mode, (6, 4)).save(buf, fmt)
    image = decode_image(buf.getvalue())
    assert image.mode == "RGB" and image.size == (6, 4)


def test_sixteen_bit_grey_is_scaled_to_8_bits_not_clipped():
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    decoded = np.asarray(decode_image(_png(Image.fromarray(values))))[0, :, 0]
    assert decoded.tolist() == [0, 1, 128, 255]


def test_animated_images_give_their_first_frame():
    frames = [Image.new("RGB", (5, 5), (200, 0, 0)), Image.new("RGB", (5, 5), (0, 200, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert decode_image(buf.getvalue()).getpixel((2, 2))[0] > 150


def test_exif_orientation_is_applied_and_the_header_size_agrees():
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.new("RGB", (80, 40)).save(buf, "JPEG", exif=exif.tobytes())
    assert decode_image(buf.getvalue()).size == (40, 80)
    assert image_size(buf.getvalue()) == (80, 40)  # (height, width) as displayed


def test_pixel_limit_refuses_before_decoding(monkeypatch):
    data = _png(Image.new("L", (100, 100)))
    with pytest.raises(ModelError, match="over the limit of 9,999"):
        decode_image(data, max_pixels=9_999)
    monkeypatch.setenv("DA2K_MAX_PIXELS", "5000")
    with pytest.raises(ModelError, match=r"\$DA2K_MAX_PIXELS"):
        decode_image(data)
    monkeypatch.setenv("DA2K_MAX_PIXELS", "10000")
    assert decode_image(data).size == (100, 100)


def test_a_tiny_png_claiming_a_huge_size_costs_nothing():
    # 11000 x 10000 zeros: a small file below Pillow's own bomb limit; the header alone refuses it
    buf = io.BytesIO()
    Image.new("1", (11000, 10000)).save(buf, "PNG")
    assert len(buf.getvalue()) < 200_000
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(ModelError, match="110,000,000 pixels"):
        decode_image(buf.getvalue())


def test_truncated_and_garbage_files_are_one_line_errors(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(buf, "JPEG")
    with pytest.raises(ModelError) as info:
        decode_image(buf.getvalue()[:200], name="x.jpg")
    assert "x.jpg" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ModelError, match="not an image"):
        decode_image(b"hello", name="y.png")
    with pytest.raises(ModelError, match="does not exist"):
        decode_image(tmp_path / "nope.jpg")


def test_extreme_aspect_ratio_caps_the_network_input():
    from da2k.models import network_size

    assert network_size(1500, 2000, 518) == (518, 686)  # the official resize, unchanged
    assert network_size(1000, 37, 518) == (14000, 518)  # 27:1, still the official resize
    assert network_size(3000, 10, 518) == (16576, 56)  # not 155400 x 518
    assert network_size(10, 3000, 518) == (56, 16576)


def test_a_3000_by_10_strip_runs_through_the_network_quickly(tiny_weights):
    import time

    from da2k.models import build_model, infer

    model = build_model("vit-tiny", tiny_weights)
    start = time.process_time()
    depth = infer(model, Image.new("RGB", (10, 3000), (90, 90, 90)), 224)
    assert depth.shape == (3000, 10)
    assert time.process_time() - start < 60  # CPU seconds; uncapped it is a 67200 x 224 input


# ---------------------------------------------------------------- the scanner


def test_scan_is_recursive_sorted_and_skips_hidden_files(tmp_path):
    for rel in ("b/2.jpg", "a/1.PNG", "a/z/3.webp", "a/.hidden.jpg", ".cache/4.jpg", "a/._5.jpg", "a/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in scan_images(tmp_path)]
    assert found == ["a/1.PNG", "a/z/3.webp", "b/2.jpg"]


def test_symlinks_leaving_the_root_are_skipped_with_a_warning(tmp_path, caplog):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"x")
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    (root / "in" / "ok.jpg").write_bytes(b"x")
    os.symlink(outside / "secret.jpg", root / "link.jpg")
    os.symlink(outside, root / "linkdir")
    os.symlink(root / "in" / "ok.jpg", root / "alias.jpg")  # stays inside: kept
    os.symlink(root, root / "in" / "loop")  # inside, but already scanned: not entered again
    with caplog.at_level(logging.WARNING):
        found = [p.relative_to(root).as_posix() for p in scan_images(root)]
    assert found == ["alias.jpg", "in/ok.jpg"]
    assert "link.jpg" in caplog.text and "linkdir" in caplog.text


# ---------------------------------------------------------------- the archive reader


def _bench_zip(path: Path, images: dict[str, bytes], annotations: dict, **faults) -> Path:
    entries = [entry("B/annotations.json", json.dumps(annotations).encode())]
    entries += [entry("B/" + name, data, **faults.get(name, {})) for name, data in images.items()]
    return write_raw_zip(path, entries)


PAIR = [{"point1": [1, 1], "point2": [3, 3], "closer_point": "point1"}]


@pytest.mark.parametrize(
    "fault, message",
    [
        ({"bad_crc": True}, "Bad CRC-32"),
        ({"extra_flags": 0x1}, "encrypted"),
        ({"method": 99}, "compression method"),
        ({"truncate": True}, "zip member"),
    ],
)
def test_a_broken_member_is_a_per_image_problem(tmp_path, fault, message):
    image = _png(Image.new("RGB", (8, 8), (1, 2, 3)))
    key = "images/indoor/a.png"
    archive = _bench_zip(
        tmp_path / "b.zip",
        {key: image, "images/indoor/b.png": image},
        {key: PAIR, "images/indoor/b.png": PAIR},
        **{key: fault},
    )
    report = validate(load_benchmark(archive))
    assert [(p.key, p.code) for p in report.errors] == [(key, "unreadable")]
    assert message in report.errors[0].message and report.is_valid("images/indoor/b.png")


@pytest.mark.parametrize(
    "key", ["/etc/passwd", "images/../../x.png", "images\\indoor\\a.png", "C:/images/a.png", "c:images/a.png"]
)
def test_unsafe_keys_are_refused_per_image(tmp_path, key):
    image = _png(Image.new("RGB", (8, 8)))
    archive = _bench_zip(tmp_path / "b.zip", {"images/indoor/a.png": image}, {key: PAIR, "images/indoor/a.png": PAIR})
    bench = load_benchmark(archive)
    with pytest.raises(MemberError, match="refusing the image path"):
        bench.read_bytes(key)
    report = validate(bench)
    assert [(p.key, p.code) for p in report.errors][0] == (key, "unsafe")
    assert report.is_valid("images/indoor/a.png")


def test_a_folder_key_through_a_symlink_out_of_the_root_is_refused(tmp_path):
    (tmp_path / "secret.png").write_bytes(_png(Image.new("RGB", (8, 8))))
    root = tmp_path / "bench"
    (root / "images" / "indoor").mkdir(parents=True)
    os.symlink(tmp_path / "secret.png", root / "images" / "indoor" / "a.png")
    (root / "annotations.json").write_text(json.dumps({"images/indoor/a.png": PAIR}))
    report = validate(load_benchmark(root))
    assert report.errors[0].code == "unsafe" and "outside" in report.errors[0].message


def test_folder_names_written_in_nfd_match_nfc_keys(tmp_path):
    root = tmp_path / "bench"
    folder = root / "images" / "outdoor"
    folder.mkdir(parents=True)
    (folder / unicodedata.normalize("NFD", "café.png")).write_bytes(_png(Image.new("RGB", (8, 8))))
    (root / "annotations.json").write_text(json.dumps({"images/outdoor/café.png": PAIR}, ensure_ascii=False))
    assert validate(load_benchmark(root)).ok


def test_oversized_or_too_deep_annotations_are_one_clear_error(tmp_path, monkeypatch):
    import da2k.images

    root = tmp_path / "bench"
    root.mkdir()
    (root / "annotations.json").write_text(json.dumps({"images/indoor/a.png": PAIR}))
    monkeypatch.setattr(da2k.images, "MAX_ANNOTATIONS_BYTES", 20)
    with pytest.raises(Da2kError, match="over the limit of 20"):
        load_benchmark(root)
    with pytest.raises(Da2kError, match="over the limit of 20"):
        load_benchmark(_bench_zip(tmp_path / "b.zip", {}, {"images/indoor/a.png": PAIR}))
    monkeypatch.undo()
    (root / "annotations.json").write_text('{"k": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(Da2kError, match="nested"):
        load_benchmark(root)
    (root / "annotations.json").write_text('{"k": ' + "[" * 40 + "]" * 40 + "}")
    with pytest.raises(Da2kError, match="more than 32 levels"):
        load_benchmark(root)


def test_a_zip_that_is_not_one_is_a_one_line_error(tmp_path):
    path = tmp_path / "DA-2K.zip"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(Da2kError) as info:
        open_archive(path)
    assert "\n" not in str(info.value)


def test_extract_writes_atomically_under_its_root_and_checks_the_bytes(tmp_path):
    image = _png(Image.new("RGB", (8, 8), (5, 6, 7)))
    bench = load_benchmark(
        _bench_zip(tmp_path / "b.zip", {"images/indoor/a.png": image}, {"images/indoor/a.png": PAIR})
    )
    path, digest = extract(bench.archive, "images/indoor/a.png", tmp_path / "out")
    assert path.read_bytes() == image and path.parent == (tmp_path / "out/images/indoor").resolve()
    assert extract(bench.archive, "images/indoor/a.png", tmp_path / "out") == (path, digest)  # kept as is
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]  # no temporary left
    path.write_bytes(b"someone else's file")
    with pytest.raises(Da2kError, match="other content"):
        extract(bench.archive, "images/indoor/a.png", tmp_path / "out")
    assert path.read_bytes() == b"someone else's file"  # nothing replaced
    os.symlink(tmp_path, tmp_path / "out" / "images" / "escape")
    bench.archive.members["B/images/escape/b.png"] = bench.archive.members["B/images/indoor/a.png"]
    with pytest.raises(MemberError, match="outside"):
        extract(bench.archive, "images/escape/b.png", tmp_path / "out")
    assert not (tmp_path / "b.png").exists()


def test_import_benchmark_never_writes_outside_extract_to(tmp_path):
    from click.testing import CliRunner

    from da2k.cli import main

    image = _png(Image.new("RGB", (8, 8), (5, 6, 7)))
    evil = {
        "../evil.png": PAIR,
        "../../evil2.png": PAIR,
        str(tmp_path / "abs-evil.png"): PAIR,
        "images/../../evil3.png": PAIR,
        "images/indoor/good.png": PAIR,
    }
    entries = [entry("B/annotations.json", json.dumps(evil).encode()), entry("B/images/indoor/good.png", image)]
    entries += [entry(name, image) for name in ("B/../evil.png", "../../evil2.png", str(tmp_path / "abs-evil.png"))]
    entries += [entry("B/images/../../evil3.png", image)]
    (tmp_path / "zip").mkdir()
    archive = write_raw_zip(tmp_path / "zip" / "slip.zip", entries)
    target = tmp_path / "deep" / "extract"
    result = CliRunner().invoke(
        main, ["import-benchmark", str(archive), "--db", str(tmp_path / "i.db"), "--extract-to", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert "1 images, 1 pairs added" in result.output
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["deep/extract/images/indoor/good.png", "i.db", "zip/slip.zip"]
    for name in ("evil.png", "evil2.png", "abs-evil.png", "evil3.png", "deep/evil.png", "zip/evil.png"):
        assert not (tmp_path / name).exists()
