"""Depth Anything V1/V2 (DINOv2 + DPT), relative and metric, matching the official code.

from da2k.models import build_model, infer
model = build_model("vits", weights="depth_anything_v2_vits.pth")
depth = infer(model, "photo.jpg")          # (H, W) disparity-like tensor
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .depth_anything import DepthAnything
from .depth_anything import build_architecture as _build_architecture
from .errors import ModelError
from .inference import LowRes, infer, infer_lowres, infer_network, predict
from .registry import VARIANTS, Variant, get_variant
from .runtime import (
    PRECISIONS,
    Precision,
    autocast_dtype,
    cpu_flags,
    native_bf16,
    resolve_precision,
    scoring_precision,
    select_device,
)
from .transforms import load_image, network_size, to_network_input
from .weights import WEIGHTS_DIR_ENV, checkpoint_source, file_sha256, load_strict, read_state_dict, remap_state_dict
from .weights import resolve_weights as _resolve_weights


def resolve_weights(name: str, weights: str | os.PathLike | None = None) -> Path:
    """Checkpoint path for variant `name`: `weights`, `$DA2K_WEIGHTS_DIR`, then the hub."""
    return _resolve_weights(get_variant(name), weights)


def build_model(name: str | Variant, weights: str | os.PathLike | None = None) -> torch.nn.Module:
    """The `name` network (a registry name, or a `Variant`) in eval mode on the CPU.

    `weights=None`: architecture only (random init); otherwise a checkpoint file (or a directory
    holding the official file name) loaded with strict key matching. `model.checkpoint` is the
    loaded path (or None). The one way to build our network (`load_pretrained` resolves the
    weights first)."""
    variant = name if isinstance(name, Variant) else get_variant(name)
    model = _build_architecture(variant)
    model.checkpoint = None
    if weights is not None:
        path = _resolve_weights(variant, weights)
        load_strict(model, read_state_dict(path), str(path), variant.name)
        model.checkpoint = path
    return model


def load_pretrained(name: str, weights: str | os.PathLike | None = None) -> torch.nn.Module:
    """`build_model` with weights always resolved (`weights`, `$DA2K_WEIGHTS_DIR`, hub)."""
    return build_model(name, resolve_weights(name, weights))


__all__ = [
    "DepthAnything",
    "LowRes",
    "ModelError",
    "VARIANTS",
    "Variant",
    "WEIGHTS_DIR_ENV",
    "autocast_dtype",
    "build_model",
    "checkpoint_source",
    "cpu_flags",
    "file_sha256",
    "get_variant",
    "infer",
    "infer_lowres",
    "infer_network",
    "load_image",
    "load_pretrained",
    "native_bf16",
    "network_size",
    "PRECISIONS",
    "Precision",
    "predict",
    "read_state_dict",
    "remap_state_dict",
    "resolve_precision",
    "resolve_weights",
    "scoring_precision",
    "select_device",
    "to_network_input",
]
