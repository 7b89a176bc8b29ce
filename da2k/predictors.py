"""Predictors: anything that turns an image into a depth or disparity map, with its conventions.

One interface, `Predictor`: `predict(image) -> Prediction` (a (h, w) map at any resolution, its
kind, and how it maps onto the image), plus an `id`, a `checkpoint_sha256` and the `settings`
recorded in result files. Evaluation calls `prepare` (decode, resize: any thread) and `forward`
(the network: the calling thread) separately so decoding of the next images overlaps the forward.

Specs accepted by `make_predictor` (the `--model` of `da2k evaluate`):

    vits | vitb | vitl | vitg | v1-* | metric-* | vit-tiny   ours (da2k.models), --weights
    precomputed:DIR           DIR/<image key with .npy or .png>, any resolution, --kind required
    hf:REPO                   a transformers depth-estimation model (pip install 'da2k[hf]')
    marigold:REPO             diffusers MarigoldDepthPipeline (pip install 'da2k[marigold]')
    python:MODULE:FUNCTION    any callable image -> (map, kind[, align_corners])
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import io
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from da2k.errors import Da2kError
from da2k.scoring import KINDS

ImageLoader = Callable[[], Image.Image]


@dataclass
class Prediction:
    """A model output: `values` (h, w) at any resolution, `kind` (`disparity`: larger = closer,
    or `depth`), and the bilinear convention that resizes it onto the image (EXIF-applied)."""

    values: np.ndarray
    kind: str
    align_corners: bool = False


PredictionMap = Prediction  # the name the team notes use


def map_path(root: str | Path, key: str, ext: str) -> Path:
    """`root/<key with its extension replaced by ext>`: where a precomputed map for `key` lives."""
    return Path(root) / Path(key).with_suffix(ext)


def _check_kind(kind: str | None, source: str) -> str:
    if kind not in KINDS:
        raise Da2kError(f"{source}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return kind


def _as_map(values: Any, source: str) -> np.ndarray:
    """A 2-D float array from a numpy array or a torch tensor, squeezing singleton axes."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim > 2:
        arr = arr.squeeze()
    if arr.ndim != 2 or arr.size == 0 or not np.issubdtype(arr.dtype, np.number):
        raise Da2kError(f"{source}: expected a 2-D numeric (h, w) map, got shape {np.shape(values)}")
    return arr.astype(np.float64 if arr.dtype == np.float64 else np.float32)


class Predictor:
    """Base class; subclasses set the attributes and implement `prepare`/`forward`.

    id: the model name in results (`vitl`, `hf:Intel/dpt-large`); family: the `predictor` field;
    kind: the declared output kind; cacheable: whether per-image values may be cached.
    """

    id: str = ""
    family: str = ""
    kind: str = "disparity"
    input_size: int | None = None
    cacheable: bool = True

    def __init__(self) -> None:
        self.settings: dict = {}

    @property
    def checkpoint_sha256(self) -> str | None:
        return None

    def prepare(self, key: str, load: ImageLoader) -> Any:
        """CPU-side work for one image (decode, resize); runs in a worker thread."""
        return load()

    def forward(self, prepared: Any) -> Prediction:
        """The model on a prepared input; runs in the calling thread."""
        raise NotImplementedError

    def predict(self, image: Image.Image, key: str = "") -> Prediction:
        """Single image (RGB, EXIF applied) -> Prediction."""
        return self.forward(self.prepare(key, lambda: image))

    def describe(self) -> dict:
        """The `model` block of a result file."""
        return {
            "id": self.id,
            "predictor": self.family,
            "kind": self.kind,
            "checkpoint_sha256": self.checkpoint_sha256,
            "input_size": self.input_size,
            "settings": dict(self.settings),
        }


class DepthAnythingPredictor(Predictor):
    """Our models (`da2k.models`): official preprocessing, network-resolution output, the
    variant's align_corners convention (V2 True, V1 False) for mapping back."""

    family = "depth-anything"

    def __init__(
        self,
        name: str,
        weights: str | Path | None = None,
        input_size: int | None = None,
        device: str = "auto",
        precision: str = "auto",
    ) -> None:
        super().__init__()
        import torch

        from da2k.models import autocast_dtype, file_sha256, get_variant, load_pretrained, select_device

        self.variant = get_variant(name)
        self.id = name
        self.kind = self.variant.kind
        self.input_size = input_size or self.variant.input_size
        self.model = load_pretrained(name, weights)
        self._sha256 = file_sha256(self.model.checkpoint)
        self.device = select_device(device)
        self.model.to(self.device)
        self.dtype = autocast_dtype(precision, self.device)
        resolved = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]
        self.settings = {"precision": resolved, "align_corners": self.variant.align_corners}

    @property
    def checkpoint_sha256(self) -> str:
        return self._sha256

    def prepare(self, key: str, load: ImageLoader) -> Any:
        from da2k.models import to_network_input

        return to_network_input(load(), self.input_size, self.variant.mean, self.variant.std)

    def forward(self, prepared: Any) -> Prediction:
        from da2k.models.inference import forward

        values = forward(self.model, prepared, self.dtype)[0].cpu().numpy()
        return Prediction(values, self.kind, self.variant.align_corners)


class PrecomputedPredictor(Predictor):
    """Maps computed elsewhere: `DIR/<key>.npy` (float, any shape squeezing to 2-D) or
    `DIR/<key>.png` (8/16-bit grayscale), any resolution, resized bilinearly onto the image.

    A map may also sit under DIR without the leading `images/` of the key. Not cached (reading a
    map is as cheap as reading a cache entry); `checkpoint_sha256` digests the maps read.
    """

    family = "precomputed"
    cacheable = False

    def __init__(self, directory: str | Path, kind: str | None, align_corners: bool = False) -> None:
        super().__init__()
        self.directory = Path(directory).expanduser()
        if not self.directory.is_dir():
            raise Da2kError(f"precomputed maps folder {self.directory} does not exist")
        if kind is None:
            raise Da2kError("precomputed maps need --kind depth or --kind disparity (larger = closer)")
        self.kind = _check_kind(kind, "--kind")
        self.id = f"precomputed:{self.directory.resolve().name}"
        self.align_corners = align_corners
        self.settings = {"directory": str(self.directory.resolve()), "align_corners": align_corners}
        self._hashes: dict[str, str] = {}

    @property
    def checkpoint_sha256(self) -> str:
        digest = hashlib.sha256()
        for key in sorted(self._hashes):
            digest.update(f"{key}\0{self._hashes[key]}\n".encode())
        return digest.hexdigest()

    def find(self, key: str) -> Path:
        rel = Path(key)
        tails = [rel] + ([Path(*rel.parts[1:])] if rel.parts[0] == "images" and len(rel.parts) > 1 else [])
        for tail in tails:
            for ext in (".npy", ".png"):
                path = map_path(self.directory, str(tail), ext)
                if path.is_file():
                    return path
        raise Da2kError(f"no precomputed map for {key}: expected {map_path(self.directory, key, '.npy')} (or .png)")

    def prepare(self, key: str, load: ImageLoader) -> Prediction:
        path = self.find(key)
        data = path.read_bytes()
        self._hashes[key] = hashlib.sha256(data).hexdigest()
        try:
            if path.suffix == ".npy":
                values = np.load(io.BytesIO(data), allow_pickle=False)
            else:
                with Image.open(io.BytesIO(data)) as im:
                    if im.mode not in ("I;16", "I;16B", "I;16L", "I", "L", "F"):
                        raise Da2kError(f"{path}: a PNG map must be single-channel (8/16-bit grayscale), not {im.mode}")
                    values = np.array(im)
        except Da2kError:
            raise
        except Exception as exc:
            raise Da2kError(f"cannot read precomputed map {path}: {exc}") from None
        return Prediction(_as_map(values, str(path)), self.kind, self.align_corners)

    def forward(self, prepared: Prediction) -> Prediction:
        return prepared


# Output kind of transformers depth-estimation families (model_type -> kind). Relative models
# (DPT, Depth Anything) predict inverse depth; the metric ones predict metres.
HF_KINDS = {
    "depth_anything": "disparity",
    "dpt": "disparity",
    "glpn": "depth",
    "zoedepth": "depth",
    "depth_pro": "depth",
    "prompt_depth_anything": "depth",
}
# Families whose processor only resizes (no padding/cropping): the raw output covers the whole
# image and can be sampled at network resolution; others go through post_process.
_HF_LOWRES = {"depth_anything", "dpt", "glpn"}


class HFPredictor(Predictor):
    """A `transformers` depth-estimation model (hub id or local folder)."""

    family = "transformers"

    def __init__(self, repo: str, kind: str | None = None, input_size: int | None = None, device: str = "auto") -> None:
        super().__init__()
        try:
            import torch
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation
        except ImportError:
            raise Da2kError("hf: models need transformers: pip install 'da2k[hf]'") from None
        from da2k.models import select_device

        self.repo = repo
        self.id = f"hf:{repo}"
        try:
            self.processor = AutoImageProcessor.from_pretrained(repo)
            self.model = AutoModelForDepthEstimation.from_pretrained(repo).eval()
        except (OSError, ValueError) as exc:  # missing files; ValueError: not a valid repo id
            raise Da2kError(f"cannot load transformers model {repo!r}: {str(exc).splitlines()[0]}") from None
        config = self.model.config
        family = config.model_type
        if family == "depth_anything" and getattr(config, "depth_estimation_type", "relative") == "metric":
            declared = "depth"
        else:
            declared = HF_KINDS.get(family)
        if kind is None and declared is None:
            raise Da2kError(f"hf:{repo}: unknown output kind for model type {family!r}; pass --kind depth|disparity")
        self.kind = _check_kind(kind or declared, "--kind")
        if input_size is not None and hasattr(self.processor, "size"):
            self.processor.size = {"height": input_size, "width": input_size}
        size = getattr(self.processor, "size", None) or {}
        self.input_size = input_size or size.get("height") or size.get("shortest_edge")
        self.lowres = family in _HF_LOWRES
        self.device = select_device(device)
        self.model.to(self.device)
        self._torch = torch
        self.settings = {"model_type": family, "declared_kind": declared, "align_corners": False}
        self._sha256 = _hf_weights_sha256(repo, getattr(config, "_commit_hash", None))

    @property
    def checkpoint_sha256(self) -> str | None:
        return self._sha256

    def prepare(self, key: str, load: ImageLoader) -> Any:
        image = load()
        return self.processor(images=image, return_tensors="pt"), (image.height, image.width)

    def forward(self, prepared: Any) -> Prediction:
        inputs, size = prepared
        with self._torch.inference_mode():
            outputs = self.model(**{k: v.to(self.device) for k, v in inputs.items()})
            if self.lowres:
                values = outputs.predicted_depth[0]
            else:
                post = self.processor.post_process_depth_estimation(outputs, target_sizes=[size])
                values = post[0]["predicted_depth"]
        return Prediction(_as_map(values, self.id), self.kind, align_corners=False)


def _hf_weights_sha256(repo: str, revision: str | None, marker: str = "config.json") -> str | None:
    """sha256 over the weight files (any depth: pipelines keep them in subfolders) of a local
    folder or of the cached hub snapshot holding `marker`; None if not found."""
    folder = Path(repo)
    if not folder.is_dir():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo, marker, revision=revision)
        if not isinstance(cached, str):
            return None
        folder = Path(cached).parent
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin") and p.is_file())
    if not files:
        return None
    from da2k.models import file_sha256

    if len(files) == 1:
        return file_sha256(files[0])
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


class MarigoldPredictor(Predictor):
    """`diffusers.MarigoldDepthPipeline`: affine-invariant depth (near = 0, far = 1), so kind is
    `depth`. Seed, ensemble size and denoising steps are recorded in `settings`."""

    family = "marigold"
    kind = "depth"

    def __init__(
        self,
        repo: str,
        *,
        seed: int = 0,
        ensemble_size: int = 1,
        steps: int | None = None,
        input_size: int | None = None,
        device: str = "auto",
        precision: str = "auto",
    ) -> None:
        super().__init__()
        try:
            import torch
            from diffusers import MarigoldDepthPipeline
        except ImportError:
            raise Da2kError("marigold: models need diffusers: pip install 'da2k[marigold]'") from None
        from da2k.models import select_device

        self.repo, self.id = repo, f"marigold:{repo}"
        self.device = select_device(device)
        dtype = torch.float16 if self.device.type == "cuda" and precision in ("auto", "fp16") else torch.float32
        try:
            self.pipe = MarigoldDepthPipeline.from_pretrained(repo, torch_dtype=dtype).to(self.device)
        except (OSError, ValueError) as exc:  # missing files; ValueError: not a valid repo id
            raise Da2kError(f"cannot load Marigold pipeline {repo!r}: {str(exc).splitlines()[0]}") from None
        self.pipe.set_progress_bar_config(disable=True)
        self._torch = torch
        self.seed, self.ensemble_size, self.steps = seed, ensemble_size, steps
        self.input_size = input_size or getattr(self.pipe, "default_processing_resolution", None)
        self.settings = {
            "seed": seed,
            "ensemble_size": ensemble_size,
            "num_inference_steps": steps or getattr(self.pipe, "default_denoising_steps", None),
            "processing_resolution": self.input_size,
            "dtype": str(dtype).removeprefix("torch."),
            "align_corners": False,
        }
        self._sha256 = _hf_weights_sha256(repo, None, marker="model_index.json")

    @property
    def checkpoint_sha256(self) -> str | None:
        return self._sha256

    def forward(self, prepared: Image.Image) -> Prediction:
        # A fresh generator per image: the same image gets the same noise whatever the order,
        # which keeps resumed runs identical.
        generator = self._torch.Generator(device="cpu").manual_seed(self.seed)
        out = self.pipe(
            prepared,
            num_inference_steps=self.steps,
            ensemble_size=self.ensemble_size,
            processing_resolution=self.input_size,
            match_input_resolution=False,
            generator=generator,
            output_type="np",
        )
        return Prediction(_as_map(out.prediction, self.id), "depth", align_corners=False)


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
        self.kind_override = _check_kind(kind, "--kind") if kind is not None else None
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
        kind = self.kind_override or _check_kind(out[1], self.id)
        self.kind = kind
        align = bool(out[2]) if len(out) == 3 else False
        return Prediction(_as_map(out[0], self.id), kind, align)


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


@dataclass
class PredictorOptions:
    """Everything `--model SPEC` may need besides the spec itself."""

    weights: str | None = None
    kind: str | None = None
    input_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    ensemble_size: int = 1
    steps: int | None = None


def make_predictor(spec: str, options: PredictorOptions | None = None, **overrides: Any) -> Predictor:
    """The predictor named by `spec` (see the module docstring); options as a `PredictorOptions`
    and/or keywords (`make_predictor("vits", weights="w.pth", device="cpu")`)."""
    o = replace(options or PredictorOptions(), **overrides)
    prefix, sep, rest = spec.partition(":")
    if not sep:
        from da2k.models import get_variant

        variant = get_variant(spec)  # unknown names list the valid ones
        predictor = DepthAnythingPredictor(spec, o.weights, o.input_size, o.device, o.precision)
        if o.kind is not None and o.kind != variant.kind:
            predictor.kind = _check_kind(o.kind, "--kind")
        return predictor
    if not rest:
        raise Da2kError(f"--model {spec}: nothing after '{prefix}:'")
    if prefix == "precomputed":
        return PrecomputedPredictor(rest, o.kind)
    if prefix == "hf":
        return HFPredictor(rest, o.kind, o.input_size, o.device)
    if prefix == "marigold":
        return MarigoldPredictor(
            rest,
            seed=o.seed,
            ensemble_size=o.ensemble_size,
            steps=o.steps,
            input_size=o.input_size,
            device=o.device,
            precision=o.precision,
        )
    if prefix == "python":
        return PythonPredictor(rest, o.kind)
    raise Da2kError(
        f"unknown --model prefix {prefix!r}; use a model name (vits, vitl, ...) or "
        "precomputed:DIR, hf:REPO, marigold:REPO, python:MODULE:FUNCTION"
    )
