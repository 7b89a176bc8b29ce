"""One registry of Depth Anything variants: every per-variant number lives here and nowhere else.

Architecture numbers follow the official code (DepthAnything/Depth-Anything-V2 `dpt.py`,
`run.py`; LiheYoung/Depth-Anything `dpt.py`); hub locations follow the official READMEs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

APACHE = "Apache-2.0"
CC_BY_NC = "CC-BY-NC-4.0"


@dataclass(frozen=True)
class Encoder:
    """DINOv2 ViT numbers: width, depth, heads and the feed-forward type."""

    embed_dim: int
    depth: int
    num_heads: int
    ffn: str = "mlp"  # "mlp" (fc1/GELU/fc2) or "swiglu" (w12/w3, ViT-G)
    pos_grid: int = 37  # positional-embedding grid of the 518x518 pre-training size


ENCODERS = {
    "vits": Encoder(embed_dim=384, depth=12, num_heads=6),
    "vitb": Encoder(embed_dim=768, depth=12, num_heads=12),
    "vitl": Encoder(embed_dim=1024, depth=24, num_heads=16),
    "vitg": Encoder(embed_dim=1536, depth=40, num_heads=24, ffn="swiglu"),
    # Not an official model: a few-millisecond network for tests and the training demo.
    "vit-tiny": Encoder(embed_dim=96, depth=4, num_heads=3, pos_grid=16),
}

# DPT head widths per encoder: (features, out_channels of the four projections).
HEADS = {
    "vits": (64, (48, 96, 192, 384)),
    "vitb": (128, (96, 192, 384, 768)),
    "vitl": (256, (256, 512, 1024, 1024)),
    "vitg": (384, (1536, 1536, 1536, 1536)),
    "vit-tiny": (16, (12, 24, 48, 96)),
}

# V2 taps fixed intermediate blocks; V1 takes the last four blocks.
V2_LAYERS = {
    "vits": (2, 5, 8, 11),
    "vitb": (2, 5, 8, 11),
    "vitl": (4, 11, 17, 23),
    "vitg": (9, 19, 29, 39),
    "vit-tiny": (0, 1, 2, 3),
}

_SIZE_NAME = {"vits": "Small", "vitb": "Base", "vitl": "Large", "vitg": "Giant"}


@dataclass(frozen=True)
class Variant:
    """Everything about one named model: architecture, input contract, output meaning, weights."""

    name: str
    encoder_name: str
    layers: tuple[int, ...]
    family: str  # "v2", "v1" or "metric"
    kind: str  # "disparity" (relative, larger = closer) or "depth" (metres)
    max_depth: float | None  # metric head: sigmoid x max_depth; None: ReLU (relative)
    align_corners: bool  # how the official code resizes the output back to the image
    input_size: int = 518
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    hub_repo: str | None = None
    filename: str | None = None
    alt_filenames: tuple[str, ...] = ()
    licence: str = CC_BY_NC
    note: str = ""
    encoder: Encoder = field(init=False)
    features: int = field(init=False)
    out_channels: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoder", ENCODERS[self.encoder_name])
        features, out_channels = HEADS[self.encoder_name]
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "out_channels", out_channels)


def _v2(enc: str) -> Variant:
    public = enc != "vitg"
    return Variant(
        name=enc,
        encoder_name=enc,
        layers=V2_LAYERS[enc],
        family="v2",
        kind="disparity",
        max_depth=None,
        align_corners=True,
        hub_repo=f"depth-anything/Depth-Anything-V2-{_SIZE_NAME[enc]}" if public else None,
        filename=f"depth_anything_v2_{enc}.pth",
        licence=APACHE if enc == "vits" else CC_BY_NC,
        note="" if public else "Depth Anything V2 ViT-G weights have not been released",
    )


def _v1(enc: str) -> Variant:
    depth = ENCODERS[enc].depth
    return Variant(
        name=f"v1-{enc}",
        encoder_name=enc,
        layers=tuple(range(depth - 4, depth)),
        family="v1",
        kind="disparity",
        max_depth=None,
        align_corners=False,
        hub_repo=f"LiheYoung/depth_anything_{enc}14",
        filename="pytorch_model.bin",
        alt_filenames=(f"depth_anything_{enc}14.pth",),
        licence=APACHE,
    )


def _metric(dataset: str, enc: str) -> Variant:
    hub_name = {"hypersim": "Hypersim", "vkitti": "VKITTI"}[dataset]
    return Variant(
        name=f"metric-{dataset}-{enc}",
        encoder_name=enc,
        layers=V2_LAYERS[enc],
        family="metric",
        kind="depth",
        max_depth={"hypersim": 20.0, "vkitti": 80.0}[dataset],
        align_corners=True,
        hub_repo=f"depth-anything/Depth-Anything-V2-Metric-{hub_name}-{_SIZE_NAME[enc]}",
        filename=f"depth_anything_v2_metric_{dataset}_{enc}.pth",
        licence=APACHE if enc == "vits" else CC_BY_NC,
    )


def _tiny() -> Variant:
    return Variant(
        name="vit-tiny",
        encoder_name="vit-tiny",
        layers=V2_LAYERS["vit-tiny"],
        family="v2",
        kind="disparity",
        max_depth=None,
        align_corners=True,
        input_size=224,
        licence=APACHE,
        note="vit-tiny is a test/demo architecture with no released weights",
    )


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        *(_v2(e) for e in ("vits", "vitb", "vitl", "vitg")),
        *(_v1(e) for e in ("vits", "vitb", "vitl")),
        *(_metric(d, e) for d in ("hypersim", "vkitti") for e in ("vits", "vitb", "vitl")),
        _tiny(),
    )
}


def get_variant(name: str) -> Variant:
    """The registry entry for `name`; unknown names list the valid ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(VARIANTS)}") from None
