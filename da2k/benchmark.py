"""The DA-2K benchmark format: loading (folder or zip, read in place through `da2k.images`) and
validation.

`annotations.json` maps `images/<scenario>/<file>` to a list of pairs
`{"point1": [row, col], "point2": [row, col], "closer_point": "point1" | "point2"}`; points are in
the image as decoded with its EXIF orientation applied; image paths are relative to the folder
holding `annotations.json`. See docs/design.md.

Validation sorts what it finds into **errors** (a pair that cannot be scored: its image is
missing, unreadable or undecodable, its path unsafe, a point malformed or outside the image, the
two points identical, closer_point invalid) and **warnings** (scored as written: duplicate,
swapped and contradictory pairs, a scenario folder outside the eight).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable

from PIL import Image

from da2k.errors import Da2kError
from da2k.images import Archive, MemberError, decode_image, open_archive, parse_json
from da2k.models.errors import ModelError

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
EXPORT_MANIFEST = "da2k-export.json"
"""Written by `da2k export` beside annotations.json (which stays in the official format)."""
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


@dataclass(frozen=True)
class Pair:
    """One annotated pair; `closer`/`other` are (row, col) in the EXIF-applied image."""

    key: str
    index: int
    scenario: str
    closer_point: str
    closer: tuple[float, float]
    other: tuple[float, float]


def parse_annotations(raw: bytes, where: str) -> dict:
    """The annotation file as a dict; one-line `Da2kError` for anything that is not one."""
    data = parse_json(raw, where)
    if not isinstance(data, dict):
        raise Da2kError(
            f"{where} must be a JSON object mapping image paths to lists of pairs, not a {type(data).__name__}"
        )
    return data


class Benchmark:
    """A DA-2K-format benchmark read from a folder or a zip archive (read in place).

    `annotations` is the parsed file exactly as stored (keys as written, file order); image
    bytes are read on demand and are safe to read from several threads. `revision`: the hub
    dataset commit the archive was downloaded at (None for local files)."""

    def __init__(self, archive: Archive, revision: str | None = None) -> None:
        self.archive = archive
        self.name = archive.name
        self.source = archive.source
        self.revision = revision
        self.annotations_sha256 = hashlib.sha256(archive.annotations).hexdigest()
        self.annotations = parse_annotations(archive.annotations, archive.where)

    @property
    def n_pairs(self) -> int:
        """Pairs in the annotation file (entries that are not lists count as none)."""
        return sum(len(v) for v in self.annotations.values() if isinstance(v, list))

    @property
    def n_images(self) -> int:
        return len(self.annotations)

    def keys(self) -> list[str]:
        return list(self.annotations)

    def read_bytes(self, key: str) -> bytes:
        """The stored image file; raises `da2k.images.MemberError` (missing, unsafe, unreadable)."""
        return self.archive.read(key)

    def describe(self, key: str) -> str:
        """Where `key` lives, for messages (`bench/images/x.jpg` or `DA-2K.zip:DA-2K/images/x.jpg`)."""
        return self.archive.describe(key)

    def load_image(self, key: str) -> Image.Image:
        """The image for `key`, decoded by the one loader: EXIF-oriented, 8-bit RGB."""
        return decode_image(self.read_bytes(key), name=self.describe(key))

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


def default_source() -> tuple[Path, str | None]:
    """DA-2K.zip from the hub dataset (cached by huggingface_hub) and the dataset commit it was
    downloaded at; offline without a cached copy: a one-line error, at once (`hub_file`)."""
    from da2k.models.hub import hub_file

    advice = (
        f"download it (about 681 MB, DA-2K licence) and pass it with --data PATH/{HUB_FILE} (the zip or "
        "its extracted folder)"
    )
    try:
        path = hub_file(HUB_REPO, HUB_FILE, repo_type="dataset", advice=advice)
    except ModelError as exc:
        raise Da2kError(str(exc)) from None
    # huggingface_hub's cache layout is .../snapshots/<commit>/<file>
    revision = path.parent.name if re.fullmatch(r"[0-9a-f]{40}", path.parent.name) else None
    return path, revision


def load_benchmark(path: str | Path | None = None) -> Benchmark:
    """Open a benchmark: a folder with annotations.json (itself or one level down), the
    annotations.json file, or a zip (annotations.json anywhere inside). None: the official DA-2K
    from the hub (its dataset revision recorded)."""
    if path is None:
        source, revision = default_source()
        return Benchmark(open_archive(source), revision)
    return Benchmark(open_archive(path))


# --------------------------------------------------------------------------------------------
# Validation

ERROR, WARNING = "error", "warning"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


_IMAGE_REASONS = {
    "missing": ("image missing from the {where}", "images missing from the {where}"),
    "unreadable": ("image unreadable in the {where}", "images unreadable in the {where}"),
    "undecodable": ("image that does not decode", "images that do not decode"),
    "unsafe": ("image path refused as unsafe", "image paths refused as unsafe"),
    "no_scenario": ("image outside images/<scenario>/", "images outside images/<scenario>/"),
    "not_list": ("image entry that is not a list", "image entries that are not lists"),
}
_PAIR_REASONS = {
    "outside": ("pair with a point outside its image", "pairs with a point outside their image"),
    "identical": ("pair with identical points", "pairs with identical points"),
    "malformed": ("malformed pair", "malformed pairs"),
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong, located by image key and (for pair-level problems) pair index.

    `severity`: "error" (the pair, or every pair of the image, cannot be scored) or "warning"
    (scored as written). `code` names the kind (`missing`, `outside`, `duplicate`, ...)."""

    key: str
    pair_index: int | None
    message: str
    severity: str = ERROR
    code: str = ""

    def __str__(self) -> str:
        where = self.key if self.pair_index is None else f"{self.key} pair {self.pair_index}"
        return f"{where}: {self.message}" if self.severity == ERROR else f"{where}: warning: {self.message}"


@dataclass
class Report:
    """What `validate` found: every problem in annotation order, the image sizes it read, and
    what cannot be scored (`image_errors`: key -> first image-level error code; `bad_pairs`)."""

    problems: list[Problem] = field(default_factory=list)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (H, W), EXIF-applied
    sha256: dict[str, str] = field(default_factory=dict)  # key -> sha256 of the stored file
    image_errors: dict[str, str] = field(default_factory=dict)
    bad_pairs: set[tuple[str, int]] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        """No problem at all, warnings included (what `--strict` asks for)."""
        return not self.problems

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    @property
    def bad_images(self) -> set[str]:
        return set(self.image_errors)

    def is_valid(self, key: str, index: int | None = None) -> bool:
        """Whether the image (and, with `index`, that pair) can be scored."""
        return key not in self.image_errors and (index is None or (key, index) not in self.bad_pairs)

    def skipped_pairs(self, annotations: dict) -> int:
        """Pairs that cannot be scored (all pairs of an image with an error count)."""
        n = sum(len(v) for k, v in annotations.items() if k in self.image_errors and isinstance(v, list))
        return n + sum(1 for k, _ in self.bad_pairs if k not in self.image_errors)

    def skip_reasons(self, folder: bool = False) -> str:
        """What cannot be scored, by reason: `4 images missing from the archive, 1 malformed pair`."""
        where = "folder" if folder else "archive"
        parts = []
        for code, n in Counter(self.image_errors.values()).items():
            one, many = _IMAGE_REASONS.get(code, (code, code))
            parts.append(_count(n, one, many).format(where=where))
        pair_codes: dict[tuple[str, int], str] = {}
        for p in self.errors:  # a pair's first error names its reason
            if p.pair_index is not None and p.key not in self.image_errors:
                pair_codes.setdefault((p.key, p.pair_index), p.code)
        for code, n in Counter(pair_codes.values()).items():
            parts.append(_count(n, *_PAIR_REASONS.get(code, (code, code))))
        return ", ".join(parts)


def _inspect_image(bench: Benchmark, key: str) -> tuple[str | None, tuple[int, int] | tuple[str, str]]:
    """(sha256 of the file, (H, W) after EXIF orientation), or (code, reason) if unusable."""
    try:
        data = bench.read_bytes(key)
    except MemberError as exc:
        return None, (exc.reason, str(exc))
    digest = hashlib.sha256(data).hexdigest()
    try:
        im = decode_image(data, name=bench.describe(key))
    except ModelError as exc:
        return digest, ("undecodable", f"image does not decode ({exc})")
    return digest, (im.height, im.width)


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _point(value: Any) -> tuple[float, float] | None:
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and all(v == v and abs(v) != float("inf") for v in value)
    ):
        return (value[0], value[1])
    return None


def _pair_problems(pair: Any, size: tuple[int, int] | None) -> tuple[list[tuple[str, str]], dict]:
    """(code, message) problems with one pair, and its well-formed points by name."""
    if not isinstance(pair, dict):
        return [("malformed", f"a pair must be an object with point1, point2, closer_point, not {_show(pair)}")], {}
    problems, points = [], {}
    for name in ("point1", "point2"):
        if name not in pair:
            problems.append(("malformed", f"{name} is missing"))
            continue
        pt = _point(pair[name])
        if pt is None:
            problems.append(("malformed", f"{name} must be [row, col] numbers, got {_show(pair[name])}"))
        elif size is not None and not (0 <= pt[0] <= size[0] - 1 and 0 <= pt[1] <= size[1] - 1):
            problems.append(
                (
                    "outside",
                    f"{name} (row {pt[0]}, col {pt[1]}) lies outside the {size[0]}x{size[1]} image "
                    f"(rows 0..{size[0] - 1}, cols 0..{size[1] - 1}, EXIF orientation applied)",
                )
            )
        else:
            points[name] = pt
    if pair.get("closer_point") not in ("point1", "point2"):
        got = _show(pair["closer_point"]) if "closer_point" in pair else "nothing"
        problems.append(("malformed", f'closer_point must be "point1" or "point2", got {got}'))
    if len(points) == 2 and points["point1"] == points["point2"]:
        problems.append(("identical", "point1 and point2 are the same point: the pair can never be scored right"))
    return problems, points


def _repeat(first: dict, pair: dict) -> tuple[str, str] | None:
    """How `pair` repeats the earlier pair `first` on the same two points (code, what), if it does."""
    closer = pair["point1"] if pair["closer_point"] == "point1" else pair["point2"]
    first_closer = first["point1"] if first["closer_point"] == "point1" else first["point2"]
    if tuple(closer) != tuple(first_closer):
        return "contradictory", "contradicts pair {i}: the same two points with the other one closer"
    if tuple(pair["point1"]) == tuple(first["point1"]):
        return "duplicate", "duplicate of pair {i} (same two points, same answer)"
    return "swapped", "swapped duplicate of pair {i} (point1 and point2 exchanged, same answer)"


def _check_pairs(key: str, pairs: list, size: tuple[int, int] | None, report: Report) -> None:
    seen: dict[frozenset, int] = {}
    for i, pair in enumerate(pairs):
        problems, points = _pair_problems(pair, size)
        for code, message in problems:
            report.problems.append(Problem(key, i, message, ERROR, code))
        if problems:
            report.bad_pairs.add((key, i))
            continue
        ident = frozenset((points["point1"], points["point2"]))
        if ident in seen:
            code, message = _repeat(pairs[seen[ident]], pair)
            report.problems.append(Problem(key, i, message.format(i=seen[ident]), WARNING, code))
        else:
            seen[ident] = i


def _image_problems(key: str, value: Any, inspected: tuple, known: set[str], report: Report) -> list[Problem]:
    """The image-level problems of `key`: its file first (an unsafe or missing file is what a
    user must hear about), then its scenario folder, then the shape of its entry."""
    problems = []
    digest, size = inspected
    if digest is not None:
        report.sha256[key] = digest
    if isinstance(size[0], str):
        problems.append(Problem(key, None, size[1], ERROR, size[0]))
    else:
        report.sizes[key] = size
    scenario = scenario_of(key)
    if scenario is None:
        message = "no scenario folder: image paths must look like images/<scenario>/<file>"
        problems.append(Problem(key, None, message, ERROR, "no_scenario"))
    elif scenario not in known:
        message = (
            f"unknown scenario {scenario!r} (known: {', '.join(sorted(known))}); "
            f"accept it with --allow-scenario {scenario}"
        )
        problems.append(Problem(key, None, message, WARNING, "unknown_scenario"))
    if not isinstance(value, list):
        problems.append(Problem(key, None, f"must map to a list of pairs, not {_show(value)}", ERROR, "not_list"))
    return problems


def declared_scenarios(bench: Benchmark) -> set[str]:
    """Scenario names a benchmark built by `da2k export` declares as its own (from the
    database it came from, in `da2k-export.json`); empty for any other benchmark."""
    try:
        manifest = json.loads(bench.read_bytes(EXPORT_MANIFEST))
    except (MemberError, OSError, ValueError, RecursionError):
        return set()
    names = manifest.get("scenarios") if isinstance(manifest, dict) else None
    return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()


def validate(bench: Benchmark, allowed_scenarios: Iterable[str] = (), workers: int = 4) -> Report:
    """Check everything (see README): images exist and decode, points inside the EXIF-applied
    image and distinct, closer_point valid (errors); duplicate, swapped and contradictory pairs
    and scenarios outside the eight unless allowed or declared by a `da2k export` (warnings).
    Never raises for content problems: they are all collected in the report, in annotation order."""
    known = set(SCENARIOS) | set(allowed_scenarios) | declared_scenarios(bench)
    report = Report()
    keys = bench.keys()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        inspected = dict(zip(keys, pool.map(lambda k: _inspect_image(bench, k), keys)))
    for key in keys:
        value = bench.annotations[key]
        image_problems = _image_problems(key, value, inspected[key], known, report)
        report.problems.extend(image_problems)
        first_error = next((p.code for p in image_problems if p.severity == ERROR), None)
        if first_error is not None:
            report.image_errors[key] = first_error
        if isinstance(value, list):
            _check_pairs(key, value, report.sizes.get(key), report)
    return report
