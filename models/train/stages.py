"""The Depth Anything V2 stages as functions: teacher on labelled synthetic RGB-D, student on
pseudo labels, metric fine-tuning. Each builds the network, initialises it, and hands a dataset
and a loss to `engine.train`; the result is `out_dir/model.pt`, a plain state dict that
`da2k.models.build_model(variant, weights=...)` loads strictly.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from da2k.models import (
    VARIANTS,
    Variant,
    build_model,
    get_variant,
    read_state_dict,
)
from da2k.models.errors import ModelError
from da2k.models.weights import load_strict

from .data import Augment, TrainSet, parse_data_spec, pseudo_records
from .engine import TrainConfig, seed_everything, train
from .losses import SiLogLoss, SSIGradientLoss

log = logging.getLogger(__name__)

DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_{0}14/dinov2_{0}14_pretrain.pth"
DINOV2_FILE = "dinov2_{0}14_pretrain.pth"
RELATIVE_ENCODERS = ("vits", "vitb", "vitl", "vitg", "vit-tiny")


def dinov2_file(encoder: str, path: str | os.PathLike | None = None) -> Path:
    """The official DINOv2 backbone checkpoint for `encoder` (`dinov2_vits14_pretrain.pth`, ...):
    `path` if given, else torch.hub's cache, downloading from dl.fbaipublicfiles.com once."""
    if encoder not in ("vits", "vitb", "vitl", "vitg"):
        raise ModelError(f"there are no DINOv2 weights for {encoder!r}; use --init random or a checkpoint")
    name = DINOV2_FILE.format(encoder)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ModelError(f"--dinov2-weights {p} does not exist")
        return p
    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    if cached.is_file():
        return cached
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("DA2K_OFFLINE") == "1":
        raise ModelError(
            f"offline and {name} is not cached: download {DINOV2_URL.format(encoder)} and pass --dinov2-weights PATH"
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(DINOV2_URL.format(encoder), str(cached.with_suffix(".part")), progress=False)
    except Exception as exc:  # noqa: BLE001 -- any network failure is user-fixable the same way
        raise ModelError(
            f"cannot download {name} ({type(exc).__name__}): fetch {DINOV2_URL.format(encoder)} and pass --dinov2-weights PATH"
        ) from None
    cached.with_suffix(".part").rename(cached)
    return cached


def init_model(
    variant: Variant, init: str, *, dinov2_weights: str | None = None, encoder_only: bool = False
) -> torch.nn.Module:
    """Network for `variant`, initialised by `init`: "dinov2" (official DINOv2 backbone, strict,
    head random), "random", or a Depth Anything checkpoint path (strict; `encoder_only` keeps just
    its `pretrained.*` weights, as the official metric fine-tuning does)."""
    model = build_model(variant)
    if init in ("random", "dinov2"):
        _open_output(model)
    if init == "random":
        return model
    if init == "dinov2":
        path = dinov2_file(variant.encoder_name, dinov2_weights)
        load_strict(model.pretrained, read_state_dict(path), str(path), f"DINOv2 {variant.encoder_name}")
        log.info("encoder initialised from %s", path)
        return model
    path = Path(init).expanduser()
    if not path.is_file():
        raise ModelError(f"--init must be dinov2, random or a checkpoint file; {path} does not exist")
    state = read_state_dict(path)
    if encoder_only:
        enc = {k[len("pretrained.") :]: v for k, v in state.items() if k.startswith("pretrained.")}
        load_strict(model.pretrained, enc, str(path), f"{variant.encoder_name} encoder")
    else:
        load_strict(model, state, str(path), variant.name)
    log.info("initialised from %s%s", path, " (encoder only)" if encoder_only else "")
    return model


def _open_output(model: torch.nn.Module, bias: float = 1.0) -> None:
    """A fresh relative head ends in ReLU: start its last conv's bias at +1 so every pixel passes
    gradient at first (with the default ~0 bias, a randomly initialised tiny network drifted into
    an all-zero output within a few dozen steps in our CPU runs and never recovered)."""
    if model.variant.max_depth is None:
        with torch.no_grad():
            model.depth_head.scratch.output_conv2[2].bias.fill_(bias)


def metric_variant(encoder: str, max_depth: float) -> Variant:
    """The registry's metric variant for max_depth 20 (Hypersim) or 80 (Virtual KITTI 2); any
    other ceiling gets an unregistered copy (its checkpoint loads into either registered name,
    but their heads scale by 20 or 80)."""
    for dataset, ceiling in (("hypersim", 20.0), ("vkitti", 80.0)):
        name = f"metric-{dataset}-{encoder}"
        if name in VARIANTS and VARIANTS[name].max_depth == max_depth:
            return VARIANTS[name]
    base = VARIANTS.get(f"metric-hypersim-{encoder}")
    if base is None:
        raise ModelError(f"no metric variant for encoder {encoder!r}; use vits, vitb or vitl")
    return dataclasses.replace(base, name=f"metric-{max_depth:g}m-{encoder}", max_depth=float(max_depth))


Evaluator = Callable[[Path, int], dict]
"""`evaluate(model_file, step) -> {column: value}`: scores a saved checkpoint (the benchmark layer
builds it and passes it in; models knows no benchmark)."""


def _run(
    model: torch.nn.Module,
    dataset: TrainSet,
    loss: torch.nn.Module,
    cfg: TrainConfig,
    evaluate: Evaluator | None,
    variant: str,
) -> Path:
    if isinstance(cfg.meta, dict):
        cfg.meta.setdefault("variant", variant)
        cfg.meta.setdefault("images", len(dataset))
    main_rank = int(os.environ.get("RANK", "0")) == 0
    path = train(model, dataset, loss, cfg, evaluate=evaluate if main_rank else None)
    log.info("weights: %s (load with build_model(%r, weights=...))", path, variant)
    return path


def train_teacher(
    data: Sequence[str],
    encoder: str,
    cfg: TrainConfig,
    *,
    init: str = "dinov2",
    dinov2_weights: str | None = None,
    size: int = 518,
    max_depth: float | None = None,
    alignment: str = "median",
    evaluate: Evaluator | None = None,
) -> Path:
    """Teacher: labelled (synthetic) RGB-D, L_ssi + 2 L_gm on disparity, no trimming;
    `evaluate` (optional) scores `model.pt` every `cfg.eval_every` steps and at the end."""
    variant = get_variant(encoder)
    _relative(variant)
    records = [r for spec in data for r in parse_data_spec(spec)]  # concatenated, not balanced
    dataset = TrainSet(records, Augment(size=size), space="disparity", max_depth=max_depth, seed=cfg.seed)
    seed_everything(cfg.seed)  # the same random head (and encoder, for --init random) every run
    model = init_model(variant, init, dinov2_weights=dinov2_weights)
    cfg.meta.update(stage="teacher", data=list(data), init=init)
    return _run(model, dataset, SSIGradientLoss(alignment=alignment), cfg, evaluate, variant.name)


def train_student(
    pseudo: Sequence[str],
    encoder: str,
    cfg: TrainConfig,
    *,
    init: str = "dinov2",
    dinov2_weights: str | None = None,
    size: int = 518,
    trim: float = 0.1,
    alignment: str = "median",
    evaluate: Evaluator | None = None,
) -> Path:
    """Student: pseudo-labelled real images only; the top `trim` of per-pixel losses ignored."""
    variant = get_variant(encoder)
    _relative(variant)
    records = [r for shards in pseudo for r in pseudo_records(Path(shards))]
    dataset = TrainSet(records, Augment(size=size), space="disparity", seed=cfg.seed)
    seed_everything(cfg.seed)  # the same random head (and encoder, for --init random) every run
    model = init_model(variant, init, dinov2_weights=dinov2_weights)
    cfg.meta.update(stage="student", pseudo=list(pseudo), init=init, trim=trim)
    return _run(model, dataset, SSIGradientLoss(alignment=alignment, trim=trim), cfg, evaluate, variant.name)


def train_metric(
    data: Sequence[str],
    encoder: str,
    cfg: TrainConfig,
    *,
    max_depth: float = 20.0,
    min_depth: float = 1e-3,
    init: str = "dinov2",
    dinov2_weights: str | None = None,
    size: int = 518,
) -> Path:
    """Metric fine-tuning: SiLog on depth in (min_depth, max_depth] metres; a relative Depth
    Anything checkpoint passed as `init` contributes its encoder only (official recipe)."""
    variant = metric_variant(encoder, max_depth)
    records = [r for spec in data for r in parse_data_spec(spec)]
    dataset = TrainSet(
        records, Augment(size=size), space="depth", min_depth=min_depth, max_depth=max_depth, seed=cfg.seed
    )
    seed_everything(cfg.seed)  # the same random head (and encoder, for --init random) every run
    model = init_model(variant, init, dinov2_weights=dinov2_weights, encoder_only=init not in ("dinov2", "random"))
    cfg.meta.update(stage="metric", data=list(data), init=init, max_depth=max_depth)
    return _run(model, dataset, SiLogLoss(), cfg, None, variant.name)


def _relative(variant: Variant) -> None:
    if variant.family != "v2" or variant.name not in RELATIVE_ENCODERS:
        raise ModelError(
            f"--encoder must be one of {', '.join(RELATIVE_ENCODERS)} for relative training, not {variant.name!r}"
        )
