"""`da2k evaluate` and `da2k validate` on a mock of the released DA-2K.zip with its known defects:
a top-level folder, non-ASCII names with and without the UTF-8 flag (and an NFD key), a
`__MACOSX/` tree, an image missing from the archive, a member with a bad CRC, duplicate, swapped
and contradictory pairs, a pair with identical points, a 16-bit PNG, an EXIF-rotated JPEG and an
animated WebP.

The model (`python:` predictor) is the image's grey level, and every image is a vertical ramp
(brighter further down, in the displayed frame), so a pair is right iff its closer point lies
lower: every count below is known exactly.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from zip_helpers import entry, write_raw_zip

from da2k.benchmark import load_benchmark, validate
from da2k.cli import main

H, W = 64, 48  # every image as displayed (EXIF applied)
CAFE_KEY = unicodedata.normalize("NFD", "images/outdoor/café.jpg")  # the key in NFD, the member NFC


def _ramp() -> np.ndarray:
    return np.repeat((np.arange(H) * 4)[:, None], W, axis=1).astype(np.uint8)  # (H, W) 0..252


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def _rgb(fmt: str) -> bytes:
    return _encode(Image.fromarray(_ramp()).convert("RGB"), fmt, **({"quality": 95} if fmt == "JPEG" else {}))


def _sixteen_bit() -> bytes:
    """A 16-bit ramp from 1000 to 64000: clipped to 8 bits it would be white everywhere (ties)."""
    return _encode(Image.fromarray((1000 + np.arange(H) * 1000)[:, None].repeat(W, 1).astype(np.uint16)), "PNG")


def _exif_rotated() -> bytes:
    """Stored W x H-rotated (64 wide, 48 tall) under orientation 6: displayed, it is the ramp."""
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    stored = Image.fromarray(_ramp()).convert("RGB").transpose(Image.Transpose.ROTATE_90)
    return _encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def _animated_webp() -> bytes:
    """First frame the ramp, second frame upside down: a loader taking any other frame flips answers."""
    first = Image.fromarray(_ramp()).convert("RGB")
    second = Image.fromarray(_ramp()[::-1].copy()).convert("RGB")
    return _encode(first, "WEBP", lossless=True, save_all=True, append_images=[second], duration=100)


def _pair(p1, p2, closer="point1") -> dict:
    return {"point1": list(p1), "point2": list(p2), "closer_point": closer}


def annotations(with_errors: bool = True) -> dict:
    plain = [
        _pair((50, 10), (10, 30)),  # right
        _pair((50, 10), (10, 30)),  # duplicate: right
        _pair((10, 30), (50, 10), "point2"),  # swapped duplicate: right
        _pair((10, 30), (50, 10)),  # contradicts pair 0: wrong
        _pair((5, 5), (55, 40)),  # wrong
    ]
    a = {
        "images/indoor/plain.jpg": plain + ([_pair((20, 20), (20, 20))] if with_errors else []),
        CAFE_KEY: [_pair((40, 20), (8, 8)), _pair((8, 40), (60, 5), "point2")],  # right, right
        "images/outdoor/straße.png": [_pair((60, 24), (3, 24))],  # right
        "images/non_real/日本語.png": [_pair((45, 10), (15, 20)), _pair((14, 30), (44, 2))],  # right, wrong
        "images/aerial/depth16.png": [_pair((50, 10), (10, 10)), _pair((40, 40), (20, 5))],  # right, right
        "images/underwater/rotated.jpg": [_pair((60, 5), (4, 40)), _pair((10, 44), (62, 2), "point2")],
        "images/object/anim.webp": [_pair((55, 20), (5, 20)), _pair((33, 3), (3, 33), "point2")],  # right, wrong
    }
    if with_errors:
        a["images/indoor/missing.jpg"] = [_pair((1, 1), (30, 30)), _pair((2, 2), (40, 40))]
        a["images/transparent_reflective/corrupt.jpg"] = [_pair((50, 5), (5, 5))]
    return a


def build_release_zip(path: Path, *, with_errors: bool = True) -> Path:
    """The mock DA-2K.zip; `with_errors=False` leaves out the missing, corrupt and identical-points
    cases (warnings only)."""
    top = "DA-2K/"
    entries = [
        entry(top + "annotations.json", json.dumps(annotations(with_errors), ensure_ascii=False).encode()),
        entry(top + "images/indoor/plain.jpg", _rgb("JPEG")),
        entry(top + "images/outdoor/café.jpg", _rgb("JPEG"), utf8_flag=True),
        entry(top + "images/outdoor/straße.png", _rgb("PNG"), utf8_flag=False),  # CP437 to zipfile
        entry(top + "images/non_real/日本語.png", _rgb("PNG"), utf8_flag=False),
        entry(top + "images/aerial/depth16.png", _sixteen_bit()),
        entry(top + "images/underwater/rotated.jpg", _exif_rotated()),
        entry(top + "images/object/anim.webp", _animated_webp()),
        entry("__MACOSX/DA-2K/._annotations.json", b"\x00\x05\x16\x07 AppleDouble"),
        entry("__MACOSX/DA-2K/images/indoor/._plain.jpg", b"\x00\x05\x16\x07 AppleDouble"),
        entry("__MACOSX/DA-2K/annotations.json", b"{not json"),
        entry(top + "images/indoor/._plain.jpg", b"\x00\x05\x16\x07 AppleDouble"),
    ]
    if with_errors:
        entries.append(entry(top + "images/transparent_reflective/corrupt.jpg", _rgb("JPEG"), bad_crc=True))
    return write_raw_zip(path, entries)


PREDICTOR = "import numpy as np\ndef grey(image):\n    return np.asarray(image, dtype=float).mean(-1), 'disparity'\n"

EXPECTED = {  # scenario: (scored, correct)
    "indoor": (5, 3),
    "outdoor": (3, 3),
    "non_real": (2, 1),
    "transparent_reflective": None,  # its only image is corrupt
    "aerial": (2, 2),
    "underwater": (2, 2),
    "object": (2, 1),
}


@pytest.fixture
def release(tmp_path) -> Path:
    return build_release_zip(tmp_path / "DA-2K.zip")


@pytest.fixture
def grey(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("DA2K_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "grey.py").write_text(PREDICTOR)
    return f"python:{tmp_path / 'grey.py'}:grey"


def _evaluate(*args: str):
    return CliRunner().invoke(main, ["evaluate", *args])


def test_unflagged_names_are_recovered_and_keys_match_after_nfc(release):
    import zipfile

    raw_names = zipfile.ZipFile(release).namelist()
    assert "DA-2K/images/outdoor/straße.png" not in raw_names  # zipfile alone decodes it as CP437
    bench = load_benchmark(release)
    assert bench.name == "DA-2K" and bench.n_images == 9 and bench.n_pairs == 20
    for key in ("images/outdoor/straße.png", "images/non_real/日本語.png", CAFE_KEY):
        assert bench.load_image(key).size == (W, H)


def test_default_evaluate_scores_the_file_as_published(release, grey, tmp_path):
    out = tmp_path / "results"
    r = _evaluate("--model", grey, "--data", str(release), "--out", str(out), "--run", "mock")
    assert r.exit_code == 0, r.output
    result = json.loads((out / "mock.json").read_text())
    got = {s: (v["n"], v["correct"]) for s, v in result["scenarios"].items()}
    assert got == {s: v for s, v in EXPECTED.items() if v is not None}
    assert (result["overall"]["n"], result["overall"]["correct"]) == (16, 12)
    bench = result["benchmark"]
    assert (bench["n_pairs"], bench["n_images"], bench["n_pairs_scored"], bench["n_images_scored"]) == (20, 9, 16, 7)
    assert result["complete"] is False
    skipped = result["skipped_invalid"]
    assert skipped["pairs"] == 4 and skipped["images"] == 2
    assert skipped["by_reason"] == {"missing": 1, "unreadable": 1}
    assert any("corrupt zip member" in p and "Bad CRC-32" in p for p in skipped["problems"])
    assert len(result["warnings"]) == 3  # duplicate, swapped, contradictory: all scored as written
    line = (
        "scored 16 of 20 pairs on 7 of 9 images; 1 image missing from the archive, 1 image unreadable in the "
        "archive, 1 pair with identical points (listed in the result file)"
    )
    assert result["summary"] == line and line in r.output.splitlines()
    assert "Traceback" not in r.output
    with open(out / "mock.pairs.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(row["image"], row["pair_index"]) for row in rows][:6] == [
        ("images/indoor/plain.jpg", str(i)) for i in range(5)
    ] + [(CAFE_KEY, "0")]  # file order, duplicates included, the key exactly as written


def test_strict_refuses_and_writes_nothing(release, grey, tmp_path):
    out = tmp_path / "results"
    r = _evaluate("--model", grey, "--data", str(release), "--out", str(out), "--strict")
    assert r.exit_code == 1 and not out.exists()
    assert "--strict refuses" in r.output and "Traceback" not in r.output
    clean = build_release_zip(tmp_path / "warnings-only.zip", with_errors=False)
    r = _evaluate("--model", grey, "--data", str(clean), "--out", str(out), "--strict")
    assert r.exit_code == 1 and not out.exists()  # warnings are refused too
    r = _evaluate("--model", grey, "--data", str(clean), "--out", str(out), "--run", "w")
    assert r.exit_code == 0 and json.loads((out / "w.json").read_text())["complete"] is True


def test_validate_lists_errors_and_warnings_apart_with_exit_codes(release, tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["validate", str(release)])
    assert r.exit_code == 1
    lines = r.output.splitlines()
    assert "images/indoor/plain.jpg pair 5: point1 and point2 are the same point" in r.output
    assert "images/indoor/missing.jpg: image file not found" in r.output
    corrupt = next(line for line in lines if line.startswith("images/transparent_reflective/corrupt.jpg: "))
    assert "Bad CRC-32" in corrupt and "download the archive again" in corrupt
    assert "images/indoor/plain.jpg pair 1: warning: duplicate of pair 0" in r.output
    assert "images/indoor/plain.jpg pair 2: warning: swapped duplicate of pair 0" in r.output
    assert "images/indoor/plain.jpg pair 3: warning: contradicts pair 0" in r.output
    assert "3 error(s) (4 pair(s) cannot be scored), 3 warning(s)" in lines[-1]
    clean = build_release_zip(tmp_path / "warnings-only.zip", with_errors=False)
    assert runner.invoke(main, ["validate", str(clean)]).exit_code == 0
    assert runner.invoke(main, ["validate", str(clean), "--strict"]).exit_code == 1


def test_the_sixteen_bit_png_is_scaled_not_clipped(release):
    image = load_benchmark(release).load_image("images/aerial/depth16.png")
    column = np.asarray(image)[:, 0, 0]
    assert column[0] == round(1000 / 257) and column[-1] == round(64000 / 257)
    assert np.all(np.diff(column.astype(int)) > 0)  # the ramp survives: no white-out


def test_report_sorts_problems_by_severity(release):
    report = validate(load_benchmark(release))
    assert [p.code for p in report.errors] == ["identical", "missing", "unreadable"]
    assert [p.code for p in report.warnings] == ["duplicate", "swapped", "contradictory"]
