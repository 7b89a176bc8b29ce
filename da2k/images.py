"""The one archive reader (a benchmark folder or zip, read in place) and the image loader.

`open_archive(path)` finds `annotations.json` (in a folder, one level down, or anywhere in a
zip: the shallowest one wins, so a top-level folder such as `DA-2K/` is fine) and reads the
benchmark's files by their annotation key. What real archives need (see the README):

- zip entry names stored without the UTF-8 flag (general-purpose bit 11) are decoded by Python
  as CP437; the UTF-8 name is recovered (CP437-encode, UTF-8-decode; the raw name is kept if
  that fails), and keys and names are matched after Unicode NFC normalisation on both sides
  (also in folders, whose names may be NFD when written on macOS);
- `__MACOSX/` trees and `._*` resource forks are ignored;
- a key that is absolute, contains `..`, a backslash or a drive letter, or resolves outside the
  benchmark root, is refused; a missing, corrupt (bad CRC), encrypted, truncated or
  unsupported-compression member is a `MemberError`: a per-image problem with one line;
- `annotations.json` is read only up to `MAX_ANNOTATIONS_BYTES`.

`extract` writes a member under a folder (atomically, sha256 checked) and never outside it.
The pixel decoding itself lives in `da2k.models.images` (models need it too); it is re-exported
here as the domain-level name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from da2k.errors import Da2kError, json_problem
from da2k.models.errors import ModelError  # what decode_image raises; re-exported for the app
from da2k.models.files import atomic_write_bytes
from da2k.models.images import IMAGE_SUFFIXES, decode_image, image_size, max_pixels, scan_images, to_rgb

log = logging.getLogger(__name__)

ANNOTATIONS = "annotations.json"
MAX_ANNOTATIONS_BYTES = 256 * 2**20
MAX_JSON_DEPTH = 32
"""annotations.json needs 4 levels (object, list, pair, point); deeper files are refused."""
MAX_MEMBER_BYTES = 512 * 2**20
"""An image file larger than this is refused unread (DA-2K's largest are a few MB)."""

__all__ = [
    "ANNOTATIONS",
    "IMAGE_SUFFIXES",
    "Archive",
    "MemberError",
    "ModelError",
    "decode_image",
    "extract",
    "image_size",
    "max_pixels",
    "open_archive",
    "scan_images",
    "to_rgb",
    "unsafe_key",
]

_DRIVE = re.compile(r"^[A-Za-z]:")


class MemberError(Da2kError):
    """One file of a benchmark cannot be read. `reason`: `missing`, `unsafe` or `unreadable`."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def unsafe_key(key: str) -> str | None:
    """Why `key` cannot name a file inside a benchmark root, or None if it can."""
    if not key or "\x00" in key:
        return "an empty path or one with a NUL character"
    if "\\" in key:
        return "a backslash in the path (write paths with '/')"
    if key.startswith("/") or _DRIVE.match(key):
        return "an absolute path"
    if ".." in PurePosixPath(key).parts:
        return "'..' in the path"
    return None


def recovered_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as its writer meant it: UTF-8 recovered when bit 11 is clear, `/`
    separators, NFC."""
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass  # really CP437 (or something else): keep what Python decoded
    return nfc(name.replace("\\", "/"))


def _ignored(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return "__MACOSX" in parts or (bool(parts) and parts[-1].startswith("._"))


class Archive:
    """A benchmark's files: `annotations` (the raw bytes of annotations.json), `read(key)`.

    `name` is the benchmark's name (the folder's or the zip's stem), `source` the folder holding
    annotations.json or the zip file, `where` where annotations.json is (for messages)."""

    name: str
    source: Path
    annotations: bytes
    where: str

    def read(self, key: str) -> bytes:
        """The bytes of the file named by annotation key `key`; raises `MemberError`."""
        raise NotImplementedError

    def describe(self, key: str) -> str:
        """Where `key` lives, for messages."""
        raise NotImplementedError

    @property
    def is_folder(self) -> bool:
        return self.source.is_dir()


def _refuse_unsafe(key: str) -> None:
    reason = unsafe_key(key)
    if reason is not None:
        raise MemberError("unsafe", f"refusing the image path {key!r}: {reason}")


def _bounded(data_size: int, limit: int, what: str) -> None:
    if data_size > limit:
        raise MemberError("unreadable", f"{what} is {data_size:,} bytes, over the limit of {limit:,}")


class FolderArchive(Archive):
    def __init__(self, root: Path, annotations_file: Path) -> None:
        self.root, self.source, self.name = root, root, root.name
        self.where = str(annotations_file)
        self._real_root = root.resolve()
        self._listing: dict[Path, dict[str, str]] = {}
        try:
            _bounded(annotations_file.stat().st_size, MAX_ANNOTATIONS_BYTES, self.where)
        except MemberError as exc:
            raise Da2kError(str(exc)) from None
        self.annotations = annotations_file.read_bytes()

    def describe(self, key: str) -> str:
        return str(self.root / key)

    def _nfc_lookup(self, key: str) -> Path | None:
        """`root/key` matched component by component after NFC (names written on macOS are NFD)."""
        here = self.root
        for part in PurePosixPath(key).parts:
            listing = self._listing.get(here)
            if listing is None:
                try:
                    listing = {nfc(p.name): p.name for p in here.iterdir()}
                except OSError:
                    return None
                self._listing[here] = listing
            actual = listing.get(nfc(part))
            if actual is None:
                return None
            here = here / actual
        return here

    def read(self, key: str) -> bytes:
        _refuse_unsafe(key)
        path = self.root / key
        if not path.exists():
            path = self._nfc_lookup(key) or path
        if not path.resolve().is_relative_to(self._real_root):
            raise MemberError("unsafe", f"refusing {self.describe(key)}: it resolves outside {self.root}")
        if not path.is_file():
            raise MemberError("missing", f"image file not found ({self.describe(key)})")
        _bounded(path.stat().st_size, MAX_MEMBER_BYTES, str(path))
        try:
            return path.read_bytes()
        except OSError as exc:
            raise MemberError("unreadable", f"cannot read {path}: {exc.strerror or exc}") from None


class ZipArchive(Archive):
    def __init__(self, path: Path) -> None:
        self.source, self.name = path, path.stem
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise Da2kError(f"{path} is not a readable zip archive ({exc}); download it again") from None
        self.members: dict[str, zipfile.ZipInfo] = {}
        refused = 0
        for info in self.zip.infolist():
            name = recovered_name(info)
            if info.is_dir() or _ignored(name):
                continue
            if unsafe_key(name) is not None:
                refused += 1  # never readable: no key can reach it
                continue
            self.members[name] = info  # a name stored twice: the last one, as zipfile does
        if refused:
            log.warning("%s: %d entries with absolute or '..' names are ignored", path, refused)
        found = [n for n in self.members if PurePosixPath(n).name == ANNOTATIONS]
        if not found:
            raise Da2kError(f"{path} contains no {ANNOTATIONS}")
        member = min(found, key=lambda n: (n.count("/"), n))  # the shallowest one
        self.prefix = member[: -len(ANNOTATIONS)]
        self.where = f"{path}:{member}"
        try:
            self.annotations = self._read_member(self.members[member], self.where, MAX_ANNOTATIONS_BYTES)
        except MemberError as exc:
            raise Da2kError(str(exc)) from None

    def describe(self, key: str) -> str:
        return f"{self.source}:{self.prefix}{key}"

    def _read_member(self, info: zipfile.ZipInfo, where: str, limit: int) -> bytes:
        _bounded(info.file_size, limit, where)
        try:
            with self.zip.open(info) as f:
                data = f.read(limit + 1)
        except zipfile.BadZipFile as exc:
            raise MemberError(
                "unreadable", f"{where}: corrupt zip member ({exc}); download the archive again"
            ) from None
        except RuntimeError as exc:  # zipfile's way of saying "encrypted"
            raise MemberError(
                "unreadable", f"{where}: {exc}; extract it with its password and pass the folder"
            ) from None
        except NotImplementedError as exc:
            raise MemberError(
                "unreadable", f"{where}: {exc} (method {info.compress_type}); re-pack it with deflate"
            ) from None
        except (EOFError, OSError, zlib.error, ValueError) as exc:
            raise MemberError("unreadable", f"{where}: truncated or corrupt zip member ({exc})") from None
        _bounded(len(data), limit, where)
        return data

    def read(self, key: str) -> bytes:
        _refuse_unsafe(key)
        # Keys are relative to annotations.json's folder; an archive that keeps the images at
        # its root instead is read too.
        for name in (self.prefix + nfc(key), nfc(key)):
            info = self.members.get(name)
            if info is not None:
                return self._read_member(info, self.describe(key), MAX_MEMBER_BYTES)
        raise MemberError("missing", f"image file not found ({self.describe(key)})")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (a deep value cannot overflow the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_JSON_DEPTH:
                return level
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_json(raw: bytes, where: str) -> Any:
    """`raw` (UTF-8, a byte-order mark tolerated) parsed as JSON nested at most `MAX_JSON_DEPTH`
    levels; anything else is one `Da2kError` line naming `where`."""
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise Da2kError(f"{where} is not valid JSON: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise Da2kError(f"{where} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise Da2kError(f"{where} is nested too deeply to be a DA-2K annotation file") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise Da2kError(f"{where} is {json_problem(exc)}") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise Da2kError(f"{where} is nested more than {MAX_JSON_DEPTH} levels deep; a DA-2K file needs 4")
    return data


def open_archive(path: str | Path) -> Archive:
    """A benchmark folder (annotations.json in it or one level down), its annotations.json, or
    a zip (annotations.json anywhere inside, read in place)."""
    path = Path(path).expanduser()
    if path.is_file() and zipfile.is_zipfile(path):
        return ZipArchive(path)
    if path.is_file() and path.name == ANNOTATIONS:
        path = path.parent
    if path.is_dir():
        candidates = [path / ANNOTATIONS] + sorted(path.glob(f"*/{ANNOTATIONS}"))
        found = next((c for c in candidates if c.is_file()), None)
        if found is not None:
            return FolderArchive(found.parent, found)
        raise Da2kError(f"no {ANNOTATIONS} in {path} (expected {path}/{ANNOTATIONS} and {path}/images/...)")
    if path.exists():
        raise Da2kError(f"{path} is neither a folder with {ANNOTATIONS}, nor {ANNOTATIONS}, nor a zip archive")
    raise Da2kError(f"no benchmark at {path}: expected a DA-2K folder, its {ANNOTATIONS} or a zip")


def extract(archive: Archive, key: str, root: Path) -> tuple[Path, str]:
    """Write the file of `key` to `root/key` atomically (temp file + rename, so a kill never
    leaves a truncated image) and return (path, sha256 of the bytes written, checked against the
    file on disk). Never writes outside `root`: unsafe keys and paths that resolve outside it
    (through symlinks) are refused. An existing identical file is kept; a different one is an
    error (nothing is replaced)."""
    data = archive.read(key)
    digest = hashlib.sha256(data).hexdigest()
    Path(root).mkdir(parents=True, exist_ok=True)
    real_root = Path(root).resolve()
    target = real_root / key  # the key as written: the store records it as the path
    existing = target
    while not existing.exists() and not existing.is_symlink():
        existing = existing.parent
    if not existing.resolve().is_relative_to(real_root):
        raise MemberError("unsafe", f"refusing to write {target}: it resolves outside {root}")
    if target.exists():
        if hashlib.sha256(target.read_bytes()).hexdigest() == digest:
            return target, digest
        raise Da2kError(
            f"{target} exists with other content than {archive.describe(key)}; move it away or extract elsewhere"
        )
    atomic_write_bytes(target, data)
    if hashlib.sha256(target.read_bytes()).hexdigest() != digest:
        target.unlink(missing_ok=True)
        raise Da2kError(f"{target}: the bytes on disk differ from the archive's after writing; check the disk")
    return target, digest
