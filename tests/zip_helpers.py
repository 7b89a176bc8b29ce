"""A zip writer at the byte level, for archives `zipfile` will not write: names stored without
the UTF-8 flag (general-purpose bit 11 clear), wrong CRCs, `..` and absolute member names."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

UTF8_FLAG = 0x800


@dataclass(frozen=True)
class RawEntry:
    name: bytes  # exactly the bytes stored in the headers
    data: bytes
    utf8_flag: bool = False
    bad_crc: bool = False
    deflate: bool = True
    extra_flags: int = 0  # e.g. 0x1: "encrypted"
    method: int | None = None  # a compression method to claim (e.g. 99, unsupported)
    truncate: bool = False  # store only the first half of the compressed data


def entry(name: str, data: bytes, *, utf8_flag: bool | None = None, **faults) -> RawEntry:
    """A member named `name` stored as UTF-8 bytes; bit 11 set only if `utf8_flag` (default: set
    for non-ASCII names, as a conforming writer does); `faults` are `RawEntry` fields."""
    raw = name.encode("utf-8")
    flag = (not name.isascii()) if utf8_flag is None else utf8_flag
    return RawEntry(raw, data, flag, **faults)


def write_raw_zip(path: Path, entries: list[RawEntry]) -> Path:
    """Local headers + data, central directory, end record; deflate or stored, no extras."""
    out, central = bytearray(), bytearray()
    for e in entries:
        crc = zlib.crc32(e.data) ^ (0xDEADBEEF if e.bad_crc else 0)
        if e.deflate:
            packer = zlib.compressobj(6, zlib.DEFLATED, -15)
            body, method = packer.compress(e.data) + packer.flush(), 8
        else:
            body, method = e.data, 0
        if e.truncate:
            body = body[: len(body) // 2]
        method = e.method if e.method is not None else method
        flags = (UTF8_FLAG if e.utf8_flag else 0) | e.extra_flags
        offset = len(out)
        common = (20, flags, method, 0, 0x21, crc, len(body), len(e.data), len(e.name))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, *common, 0) + e.name + body
        central += struct.pack("<IH", 0x02014B50, 20) + struct.pack("<HHHHHIIIHH", *common, 0)
        central += struct.pack("<HHHII", 0, 0, 0, 0, offset) + e.name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), len(out), 0)
    path.write_bytes(bytes(out + central + end))
    return path
