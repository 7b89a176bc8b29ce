"""The DA-2K benchmark format: loading (folder or zip, never extracted) and validation.

`annotations.json` maps `images/<scenario>/<file>` to a list of pairs
`{"point1": [row, col], "point2": [row, col], "closer_point": "point1" | "point2"}`; points are in
the image as decoded with its EXIF orientation applied; image paths are relative to the folder
holding `annotations.json`. See docs/design.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable

from PIL import Image, ImageOps

from da2k.errors import Da2kError

SCENARIOS = (
    "indoor",
    "outdoor",
    "non_real",
    "transparent_reflective",
    "adverse_style",
    "aerial",
    "underwater",
    "object",
)
ANNOTATIONS = "annotations.json"
HUB_REPO = "depth-anything/DA-2K"
HUB_FILE = "DA-2K.zip"


def map_path(root: str | Path, key: str, ext: str) -> Path:
    """`root/<key with its extension replaced by ext>`: where a per-image map (precomputed
    predictions, synthetic depth) for the image key `key` lives."""
    return Path(root) / Path(key).with_suffix(ext)


def scenario_of(key: str) -> str | None:
    """The path component after `images/` (`images/indoor/x.jpg` -> `indoor`); None if absent."""
    parts = PurePosixPath(key).parts
    for i, part in enumerate(parts[:-2]):
        if part == "images":
            return parts[i + 1]
    return None


def open_image(data: bytes) -> Image.Image:
    """Decode fully, apply the EXIF orientation, return RGB (the frame the points refer to)."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return ImageOps.exif_transpose(im).convert("RGB")


@dataclass(frozen=True)
class Pair:
    """One annotated pair; `closer`/`other` are (row, col) in the EXIF-applied image."""

    key: str
    index: int
    scenario: str
    closer_point: str
    closer: tuple[float, float]
    other: tuple[float, float]


class Benchmark:
    """A DA-2K-format benchmark read from a folder or a zip archive (read in place).

    `annotations` is the parsed file exactly as stored; image bytes are read on demand and are
    safe to read from several threads (zipfile serialises access to the shared handle).
    """

    def __init__(self, name: str, source: Path, raw: bytes, reader: "_Reader") -> None:
        self.name = name
        self.source = source
        self.annotations_sha256 = hashlib.sha256(raw).hexdigest()
        self._reader = reader
        try:
            self.annotations = json.loads(raw.decode("utf-8-sig"))  # tolerate a byte-order mark
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
            raise Da2kError(f"{reader.describe(ANNOTATIONS)} is not valid JSON: {msg}{where}") from None
        if not isinstance(self.annotations, dict):
            raise Da2kError(
                f"{reader.describe(ANNOTATIONS)} must be a JSON object mapping image paths to lists of "
                f"pairs, not a {type(self.annotations).__name__}"
            )

    @property
    def n_pairs(self) -> int:
        """Pairs in the annotation file (entries that are not lists count as none)."""
        return sum(len(v) for v in self.annotations.values() if isinstance(v, list))

    def keys(self) -> list[str]:
        return list(self.annotations)

    def read_bytes(self, key: str) -> bytes:
        """The stored image file; raises FileNotFoundError if the benchmark lacks it."""
        return self._reader.read(key)

    def describe(self, key: str) -> str:
        """Where `key` lives, for messages (`bench/images/x.jpg` or `DA-2K.zip:DA-2K/images/x.jpg`)."""
        return self._reader.describe(key)

    def load_image(self, key: str) -> Image.Image:
        """The image for `key`, decoded, EXIF-oriented, RGB."""
        return open_image(self.read_bytes(key))

    def pairs(self, key: str, valid: Callable[[int], bool] = lambda i: True) -> list[Pair]:
        """The pairs of one image whose index passes `valid` (they must be well-formed: see
        `validate`)."""
        scenario = scenario_of(key) or ""
        out = []
        for i, p in enumerate(self.annotations[key]):
            if not valid(i):
                continue
            first = p["closer_point"] == "point1"
            p1, p2 = tuple(p["point1"]), tuple(p["point2"])
            out.append(Pair(key, i, scenario, p["closer_point"], p1 if first else p2, p2 if first else p1))
        return out


class _Reader:
    def read(self, key: str) -> bytes:
        raise NotImplementedError

    def describe(self, key: str) -> str:
        raise NotImplementedError


class _DirReader(_Reader):
    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, key: str) -> bytes:
        path = self.root / key
        if not path.is_file():
            raise FileNotFoundError(str(path))
        return path.read_bytes()

    def describe(self, key: str) -> str:
        return str(self.root / key)


class _ZipReader(_Reader):
    def __init__(self, path: Path, archive: zipfile.ZipFile, prefix: str) -> None:
        self.path, self.archive, self.prefix = path, archive, prefix

    def read(self, key: str) -> bytes:
        # Keys are relative to annotations.json's folder; an archive that keeps the images at its
        # root instead is read too.
        for name in (self.prefix + key, key):
            try:
                return self.archive.read(name)
            except KeyError:
                continue
        raise FileNotFoundError(self.describe(key))

    def describe(self, key: str) -> str:
        return f"{self.path}:{self.prefix}{key}"


def default_source() -> Path:
    """DA-2K.zip from the hub dataset (cached by huggingface_hub); offline: a one-line error."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id=HUB_REPO, repo_type="dataset", filename=HUB_FILE))
    except Exception as exc:  # offline, no such cache entry, HTTP errors: all mean "fetch it yourself"
        raise Da2kError(
            f"cannot get {HUB_FILE} from the hub dataset {HUB_REPO} ({type(exc).__name__}); download it "
            f"(about 681 MB, DA-2K licence) and pass it with --data PATH/{HUB_FILE} (the zip or its "
            f"extracted folder)"
        ) from None


def load_benchmark(path: str | Path | None = None) -> Benchmark:
    """Open a benchmark: a folder with annotations.json (itself or one level down), the
    annotations.json file, or a zip (annotations.json anywhere inside). None: the official DA-2K."""
    path = Path(path).expanduser() if path is not None else default_source()
    if path.is_file() and zipfile.is_zipfile(path):
        return _load_zip(path)
    if path.is_file() and path.name == ANNOTATIONS:
        path = path.parent
    if path.is_dir():
        candidates = [path / ANNOTATIONS] + sorted(path.glob(f"*/{ANNOTATIONS}"))
        found = next((c for c in candidates if c.is_file()), None)
        if found is not None:
            root = found.parent
            return Benchmark(root.name, root, found.read_bytes(), _DirReader(root))
        raise Da2kError(f"no {ANNOTATIONS} in {path} (expected {path}/{ANNOTATIONS} and {path}/images/...)")
    if path.exists():
        raise Da2kError(f"{path} is neither a folder with {ANNOTATIONS}, nor {ANNOTATIONS}, nor a zip archive")
    raise Da2kError(f"no benchmark at {path}: expected a DA-2K folder, its {ANNOTATIONS} or a zip")


def _load_zip(path: Path) -> Benchmark:
    archive = zipfile.ZipFile(path)
    names = [n for n in archive.namelist() if PurePosixPath(n).name == ANNOTATIONS and "__MACOSX" not in n]
    if not names:
        raise Da2kError(f"{path} contains no {ANNOTATIONS}")
    member = min(names, key=lambda n: n.count("/"))  # the shallowest one
    prefix = member[: -len(ANNOTATIONS)]
    return Benchmark(path.stem, path, archive.read(member), _ZipReader(path, archive, prefix))


# --------------------------------------------------------------------------------------------
# Validation


@dataclass(frozen=True)
class Problem:
    """One thing wrong, located by image key and (for pair-level problems) pair index."""

    key: str
    pair_index: int | None
    message: str

    def __str__(self) -> str:
        where = self.key if self.pair_index is None else f"{self.key} pair {self.pair_index}"
        return f"{where}: {self.message}"


@dataclass
class Report:
    """What `validate` found: every problem, the image sizes it read, and what to skip."""

    problems: list[Problem] = field(default_factory=list)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (H, W), EXIF-applied
    sha256: dict[str, str] = field(default_factory=dict)  # key -> sha256 of the stored file
    bad_images: set[str] = field(default_factory=set)
    bad_pairs: set[tuple[str, int]] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.problems

    def is_valid(self, key: str, index: int | None = None) -> bool:
        return key not in self.bad_images and (index is None or (key, index) not in self.bad_pairs)

    def skipped_pairs(self, annotations: dict) -> int:
        """Pairs dropped by skipping every problem (all pairs of a bad image count)."""
        n = sum(len(v) for k, v in annotations.items() if k in self.bad_images and isinstance(v, list))
        return n + sum(1 for k, _ in self.bad_pairs if k not in self.bad_images)


def _inspect_image(bench: Benchmark, key: str) -> tuple[str | None, tuple[int, int] | str]:
    """(sha256 of the file, (H, W) after EXIF orientation), or the reason it is unusable."""
    try:
        data = bench.read_bytes(key)
    except FileNotFoundError:
        return None, f"image file not found ({bench.describe(key)})"
    digest = hashlib.sha256(data).hexdigest()
    try:
        im = open_image(data)
    except Exception as exc:  # PIL raises many types for corrupt files; all mean "cannot decode"
        return digest, f"image does not decode ({type(exc).__name__}: {exc})"
    return digest, (im.height, im.width)


def _point(value: Any) -> tuple[float, float] | None:
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and all(v == v and abs(v) != float("inf") for v in value)
    ):
        return (value[0], value[1])
    return None


def _pair_problems(pair: Any, size: tuple[int, int] | None) -> tuple[list[str], dict]:
    """Problems with one pair, and its well-formed points by name."""
    if not isinstance(pair, dict):
        return [f"a pair must be an object with point1, point2, closer_point, not {json.dumps(pair)}"], {}
    problems, points = [], {}
    for name in ("point1", "point2"):
        if name not in pair:
            problems.append(f"{name} is missing")
            continue
        pt = _point(pair[name])
        if pt is None:
            problems.append(f"{name} must be [row, col] numbers, got {json.dumps(pair[name])}")
        elif size is not None and not (0 <= pt[0] <= size[0] - 1 and 0 <= pt[1] <= size[1] - 1):
            problems.append(
                f"{name} (row {pt[0]}, col {pt[1]}) lies outside the {size[0]}x{size[1]} image "
                f"(rows 0..{size[0] - 1}, cols 0..{size[1] - 1}, EXIF orientation applied)"
            )
        else:
            points[name] = pt
    if pair.get("closer_point") not in ("point1", "point2"):
        got = json.dumps(pair["closer_point"]) if "closer_point" in pair else "nothing"
        problems.append(f'closer_point must be "point1" or "point2", got {got}')
    return problems, points


def _check_pairs(key: str, pairs: list, size: tuple[int, int] | None, report: Report) -> None:
    seen: dict[frozenset, int] = {}
    for i, pair in enumerate(pairs):
        problems, points = _pair_problems(pair, size)
        if len(points) == 2:
            ident = frozenset((points["point1"], points["point2"]))
            if ident in seen:
                problems.append(f"duplicate of pair {seen[ident]} (same two points)")
            else:
                seen[ident] = i
        report.problems.extend(Problem(key, i, message) for message in problems)
        if problems:
            report.bad_pairs.add((key, i))


def validate(bench: Benchmark, allowed_scenarios: Iterable[str] = (), workers: int = 4) -> Report:
    """Check everything (see README): images exist and decode, points inside the EXIF-applied
    image, closer_point valid, scenario known or allowed, no duplicate pairs. Never raises for
    content problems: they are all collected in the report, in annotation order."""
    known = set(SCENARIOS) | set(allowed_scenarios)
    report = Report()
    keys = bench.keys()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        inspected = dict(zip(keys, pool.map(lambda k: _inspect_image(bench, k), keys)))
    for key in keys:
        image_problems = []
        scenario = scenario_of(key)
        if scenario is None:
            image_problems.append("no scenario folder: image paths must look like images/<scenario>/<file>")
        elif scenario not in known:
            image_problems.append(
                f"unknown scenario {scenario!r} (known: {', '.join(sorted(known))}); "
                f"accept it with --allow-scenario {scenario}"
            )
        digest, size = inspected[key]
        if digest is not None:
            report.sha256[key] = digest
        if isinstance(size, str):
            image_problems.append(size)
            size = None
        else:
            report.sizes[key] = size
        value = bench.annotations[key]
        if not isinstance(value, list):
            image_problems.append(f"must map to a list of pairs, not {json.dumps(value)[:80]}")
        for message in image_problems:
            report.problems.append(Problem(key, None, message))
        if image_problems:
            report.bad_images.add(key)
        if isinstance(value, list):
            _check_pairs(key, value, size, report)
    return report
