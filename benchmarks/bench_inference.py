"""Seconds per image for our Depth Anything vs the Hugging Face `transformers` implementation.

Both networks get the same deterministic weights (da2k.models.parity; converted to the
transformers key names here) and the same demo01.jpg-sized input (1, 3, 518, 784). The baseline
is `DepthAnythingForDepthEstimation` with eager attention in fp32, measured in the same run.

    python benchmarks/bench_inference.py --models vits vitl --repeats 3
    python benchmarks/bench_inference.py --models vits --official ~/src/Depth-Anything-V2  # + official code
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

from da2k.models import build_model, cpu_flags, native_bf16
from da2k.models.parity import deterministic_state_dict

INPUT_SHAPE = (1, 3, 518, 784)  # demo01.jpg (1362 x 2048) at input size 518


def to_transformers_keys(state: dict[str, torch.Tensor], n_layers: int) -> dict[str, torch.Tensor]:
    """Our (official) key names -> transformers' DepthAnythingForDepthEstimation names."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if key.startswith("pretrained.blocks."):
            i, rest = parts[2], ".".join(parts[3:])
            prefix = f"backbone.encoder.layer.{i}."
            if rest.startswith("attn.qkv."):
                for name, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                    out[prefix + f"attention.{name}.{parts[-1]}"] = chunk
                continue
            rest = (
                rest.replace("attn.proj.", "attention.o_proj.")
                .replace("ls1.gamma", "layer_scale1.lambda1")
                .replace("ls2.gamma", "layer_scale2.lambda1")
                .replace("mlp.w12.", "mlp.weights_in.")
                .replace("mlp.w3.", "mlp.weights_out.")
            )
            out[prefix + rest] = value
        elif key.startswith("pretrained."):
            name = {
                "pretrained.cls_token": "backbone.embeddings.cls_token",
                "pretrained.mask_token": "backbone.embeddings.mask_token",
                "pretrained.pos_embed": "backbone.embeddings.position_embeddings",
                "pretrained.patch_embed.proj.weight": "backbone.embeddings.patch_embeddings.projection.weight",
                "pretrained.patch_embed.proj.bias": "backbone.embeddings.patch_embeddings.projection.bias",
                "pretrained.norm.weight": "backbone.layernorm.weight",
                "pretrained.norm.bias": "backbone.layernorm.bias",
            }[key]
            out[name] = value
        elif parts[1] == "projects":
            out[f"neck.reassemble_stage.layers.{parts[2]}.projection.{parts[3]}"] = value
        elif parts[1] == "resize_layers":
            out[f"neck.reassemble_stage.layers.{parts[2]}.resize.{parts[3]}"] = value
        elif parts[2].endswith("_rn"):
            out[f"neck.convs.{int(parts[2][5]) - 1}.weight"] = value
        elif parts[2].startswith("refinenet"):
            j = 4 - int(parts[2][-1])  # transformers orders fusion from the deepest level
            rest = ".".join(parts[3:])
            rest = (
                rest.replace("out_conv.", "projection.")
                .replace("resConfUnit1.", "residual_layer1.")
                .replace("resConfUnit2.", "residual_layer2.")
                .replace("conv1.", "convolution1.")
                .replace("conv2.", "convolution2.")
            )
            out[f"neck.fusion_stage.layers.{j}.{rest}"] = value
        else:
            head = {"output_conv1": "conv1", "output_conv2.0": "conv2", "output_conv2.2": "conv3"}
            stem = ".".join(parts[2:-1])
            out[f"head.{head[stem]}.{parts[-1]}"] = value
    return out


def transformers_model(ours: torch.nn.Module):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    v = ours.variant
    enc = v.encoder
    backbone = Dinov2Config(
        hidden_size=enc.embed_dim,
        num_hidden_layers=enc.depth,
        num_attention_heads=enc.num_heads,
        image_size=518,
        patch_size=14,
        layerscale_value=1.0,
        use_swiglu_ffn=enc.ffn == "swiglu",
        out_indices=[i + 1 for i in v.layers],
        reshape_hidden_states=False,
        apply_layernorm=True,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        fusion_hidden_size=v.features,
        neck_hidden_sizes=list(v.out_channels),
        reassemble_hidden_size=enc.embed_dim,
        depth_estimation_type="relative",
    )
    config._attn_implementation = "eager"
    model = DepthAnythingForDepthEstimation(config).eval()
    model.load_state_dict(to_transformers_keys(ours.state_dict(), enc.depth), strict=True)
    return model


def official_model(ours: torch.nn.Module, checkout: Path) -> torch.nn.Module:
    """The official `DepthAnythingV2` from a local checkout of DepthAnything/Depth-Anything-V2
    (nothing of it is copied here), with the same weights. Its `dpt.py` imports OpenCV and
    torchvision for preprocessing only; empty stand-ins let the network import without them."""

    class StandIn(types.ModuleType):
        def __getattr__(self, attr: str) -> None:  # cv2.INTER_CUBIC, transforms.Compose, ...
            return None

    for name in ("cv2", "torchvision", "torchvision.transforms"):
        sys.modules.setdefault(name, StandIn(name))
    sys.path.insert(0, str(checkout))
    from depth_anything_v2.dpt import DepthAnythingV2

    v = ours.variant
    model = DepthAnythingV2(encoder=v.encoder_name, features=v.features, out_channels=list(v.out_channels)).eval()
    model.load_state_dict(ours.state_dict(), strict=True)
    return model


def interleaved_seconds(fns: dict, x: torch.Tensor, repeats: int) -> tuple[dict, dict]:
    """Median seconds per call for each fn, timed round-robin so that load from other processes
    hits every contender alike; also returns each fn's output."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    outs = {}
    with torch.inference_mode():
        for k, fn in fns.items():
            outs[k] = fn(x).float()  # warm-up (allocator, oneDNN primitive caches)
        for _ in range(repeats):
            for k, fn in fns.items():
                t = time.perf_counter()
                fn(x)
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}, outs


def bf16(model: torch.nn.Module):
    def run(t: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(t)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vits", "vitl"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 autocast run")
    parser.add_argument(
        "--official", type=Path, help="a checkout of DepthAnything/Depth-Anything-V2: time its network too"
    )
    args = parser.parse_args()

    flags = cpu_flags()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; CPU flags: "
        + ", ".join(f"{f}={'yes' if f in flags else 'no'}" for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16"))
        + f"; native bf16: {native_bf16()}"
    )
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(INPUT_SHAPE, dtype=np.float32))
    square = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 3, 518, 518), dtype=np.float32))
    for name in args.models:
        ours = build_model(name)
        ours.load_state_dict(deterministic_state_dict(ours), strict=True)
        theirs = transformers_model(ours)
        with torch.inference_mode():
            a, b = ours(square), theirs(pixel_values=square).predicted_depth
        print(
            f"{name}: weight conversion check at 518x518 (no positional-embedding resizing): "
            f"max |diff| {((a - b).abs().max() / b.abs().max()).item():.1e}"
        )
        contenders = {"transformers": lambda t: theirs(pixel_values=t).predicted_depth, "ours": ours}
        if args.official:
            contenders["official"] = official_model(ours, args.official)
        if not args.no_bf16:
            contenders["ours-bf16"] = bf16(ours)
        secs, outs = interleaved_seconds(contenders, x, args.repeats)
        ref = outs["transformers"]
        if args.official:
            off = outs["official"]
            print(
                f"{name}: ours vs official at 518x784: max |diff| "
                f"{((outs['ours'] - off).abs().max() / off.abs().max()).item():.1e}; "
                f"ours fp32 is {secs['official'] / secs['ours']:.2f}x faster than the official code"
            )
        for key in contenders:
            diff = (outs[key] - ref).abs().max().item() / ref.abs().max().item()
            print(
                f"{name}: {key:12s} {secs[key]:6.2f} s/img  {secs['transformers'] / secs[key]:5.2f}x vs transformers fp32"
                f"  max |diff| {diff:.1e} of max |ref|"
            )
        print(
            "  (transformers resizes the positional embedding to a size, the official code and ours by a "
            "scale factor: at 518x784 their outputs differ by the amount above, at 518x518 they agree)"
        )


if __name__ == "__main__":
    main()
