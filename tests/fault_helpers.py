"""Shared pieces of the fault matrix: planted code-carrying files, tree snapshots, subprocesses
that can be killed at a chosen moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch


class Planted:
    """Unpickling this object would run `touch MARKER` (`__reduce__` returns a call)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant_pickle(path: Path, marker: Path, **tensors: torch.Tensor) -> Path:
    """A torch file that looks like a checkpoint (real tensors beside the planted object)."""
    torch.save({**tensors, "payload": Planted(marker)}, path)
    return path


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under `root`: (kind, size, mtime_ns, mode) by relative path."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            kind = "dir" if path.is_dir() else "file"
            out[path.relative_to(root).as_posix()] = (
                kind,
                0 if kind == "dir" else st.st_size,
                st.st_mtime_ns,
                st.st_mode,
            )
    return out


def changes(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    """What differs between two snapshots (folders' mtimes aside: listing changes show as files)."""
    diff = []
    for key in sorted(before.keys() | after.keys()):
        a, b = before.get(key), after.get(key)
        if a is None or b is None or (a[0] == "file" and a != b):
            diff.append(f"{key}: {a} -> {b}")
    return diff


DA2K = [sys.executable, "-c", "from da2k.cli import main; main()"]


def run_da2k(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*DA2K, *map(str, args)], env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True, text=True
    )


def start_da2k(*args: str, env: dict | None = None) -> subprocess.Popen:
    """`da2k ARGS` in a process of its own (stdout dropped, stderr read by `Lines`)."""
    return subprocess.Popen(
        [*DA2K, *map(str, args)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 180.0, sig=signal.SIGKILL) -> bool:
    """Send `sig` to `proc` as soon as `ready()` holds; False if it finished (or timed out) first."""
    lines = Lines(proc)  # keeps the pipe drained so the process never blocks on it
    deadline = time.monotonic() + timeout
    sent = False
    while time.monotonic() < deadline and proc.poll() is None:
        if ready():
            proc.send_signal(sig)
            sent = True
            break
        time.sleep(0.002)
    if not sent and proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stderr_text = lines.text()
    return sent


def file_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


class Lines:
    """The stderr lines of a running process, read by a thread as they come."""

    def __init__(self, proc: subprocess.Popen) -> None:
        import threading

        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            self.lines.append(line)

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def text(self) -> str:
        self._thread.join(timeout=5)
        return "".join(self.lines)


def kill_on_line(proc: subprocess.Popen, text: str, nth: int = 1, timeout: float = 180.0) -> tuple[bool, str]:
    """SIGKILL `proc` right after the `nth` stderr line containing `text`; (killed, stderr)."""
    lines = Lines(proc)
    deadline = time.monotonic() + timeout
    killed = False
    while time.monotonic() < deadline and proc.poll() is None:
        if lines.count(text) >= nth:
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.002)
    proc.wait()
    return killed, lines.text()
