"""`python:MODULE:FUNCTION`: any callable image -> (map, kind[, align_corners])."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from PIL import Image

from da2k.errors import Da2kError
from da2k.predictors.base import Prediction, Predictor, as_map, check_kind


class PythonPredictor(Predictor):
    """`python:MODULE:FUNCTION` (or `python:path/to/file.py:FUNCTION`): `fn(image: PIL RGB) ->
    (map, kind)` or `(map, kind, align_corners)`; map a numpy array or torch tensor."""

    family = "python"

    def __init__(self, target: str, kind: str | None = None) -> None:
        super().__init__()
        module_name, sep, fn_name = target.rpartition(":")
        if not sep or not module_name or not fn_name:
            raise Da2kError(f"python predictor must be python:MODULE:FUNCTION, got python:{target}")
        module = _import(module_name)
        self.fn = getattr(module, fn_name, None)
        if not callable(self.fn):
            raise Da2kError(f"python:{target}: {module_name} has no callable {fn_name!r}")
        self.id = f"python:{target}"
        self.kind_override = check_kind(kind, "--kind") if kind is not None else None
        self.kind = kind or "disparity"
        source = getattr(module, "__file__", None)
        self._sha256 = hashlib.sha256(Path(source).read_bytes()).hexdigest() if source else None
        self.settings = {"module_file": source}

    @property
    def checkpoint_sha256(self) -> str | None:
        return self._sha256

    def forward(self, prepared: Image.Image) -> Prediction:
        out = self.fn(prepared)
        if not isinstance(out, tuple) or len(out) not in (2, 3):
            raise Da2kError(f"{self.id} must return (map, kind) or (map, kind, align_corners)")
        kind = self.kind_override or check_kind(out[1], self.id)
        self.kind = kind
        align = bool(out[2]) if len(out) == 3 else False
        return Prediction(as_map(out[0], self.id), kind, align)


def _import(name: str):
    if name.endswith(".py"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise Da2kError(f"python predictor file {path} does not exist")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # the console script does not see the working dir
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Da2kError(f"cannot import {name!r} for the python predictor: {exc}") from None
