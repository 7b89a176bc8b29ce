"""Seconds per image of our Depth Anything against what users of the peers really run.

In one run, on the same deterministic weights (da2k.models.parity, converted to transformers'
key names here) and the same demo01.jpg-sized input (1, 3, 518, 784), interleaved:

* transformers' `DepthAnythingForDepthEstimation` as installed, with its default attention
  (SDPA in transformers 5), in fp32 and, for bf16/fp16, both as autocast and with weights cast
  to that dtype (the faster of the two is the baseline of that precision); eager attention in
  fp32 as a reference line;
* the official network (`--official DIR`, a checkout of DepthAnything/Depth-Anything-V2) as it
  ships, in fp32;
* ours through `infer_network` at each precision, eager and `torch.compile`d.

Each line gives seconds per image, the ratio against the transformers baseline of the same
precision, the max difference from ours fp32, and for ours the FLOP/s reached as a share of
what a large matmul reaches on this machine (FLOPs counted by torch.utils.flop_counter).

    python benchmarks/bench_inference.py --models vits vitl --repeats 3
    python benchmarks/bench_inference.py --models vits --official ~/src/Depth-Anything-V2
    python benchmarks/bench_inference.py --device cuda --precisions fp32 fp16 bf16
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

from da2k.models import build_model, cpu_flags, infer_network, native_bf16, select_device
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


def transformers_model(ours: torch.nn.Module, attention: str | None = None):
    """transformers' `DepthAnythingForDepthEstimation` with `ours`' weights; `attention=None`
    keeps transformers' default attention (SDPA for the DINOv2 backbone in transformers 5)."""
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
    if attention is None:
        model = DepthAnythingForDepthEstimation(config)
    else:
        model = DepthAnythingForDepthEstimation._from_config(config, attn_implementation=attention)
    model.load_state_dict(to_transformers_keys(ours.state_dict(), enc.depth), strict=True)
    return model.eval()


def transformers_attention(model) -> str:
    return model.backbone.config._attn_implementation


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


def interleaved_seconds(fns: dict, x: torch.Tensor, repeats: int, sync) -> tuple[dict, dict, dict]:
    """Median seconds per call for each fn, timed round-robin so that load from other processes
    hits every contender alike; also each fn's output and the seconds of its first call (which
    includes compiling, for compiled contenders)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    outs, first = {}, {}
    with torch.inference_mode():
        for k, fn in fns.items():
            t = time.perf_counter()
            outs[k] = fn(x).float()  # warm-up (allocator, oneDNN primitive caches, compiling)
            sync()
            first[k] = time.perf_counter() - t
        for _ in range(repeats):
            for k, fn in fns.items():
                t = time.perf_counter()
                fn(x)
                sync()
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}, outs, first


def autocast(fn, device: torch.device, dtype: torch.dtype):
    def run(t: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=dtype):
            return fn(t)

    return run


def cast_input(fn, dtype: torch.dtype):
    return lambda t: fn(t.to(dtype))


def network_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward (matmuls, convolutions and attention), by torch's FlopCounterMode,
    taught the two ops of ours it does not know: the in-place `addmm_` of the residual epilogue
    and the CPU flash-attention kernel."""
    from torch.utils.flop_counter import FlopCounterMode

    def residual(acc, a, b, *args, **kwargs) -> int:  # shapes: (M, N) += (M, K) @ (K, N)
        return 2 * a[0] * a[1] * b[1]

    def attention(q, k, v, *args, **kwargs) -> int:  # q (B, H, N, d) against k (B, H, M, d): QK^T and PV
        return 4 * q[0] * q[1] * q[2] * k[2] * q[3]

    aten = torch.ops.aten
    counter = FlopCounterMode(
        display=False,
        custom_mapping={aten.addmm_: residual, aten._scaled_dot_product_flash_attention_for_cpu: attention},
    )
    with torch.inference_mode(), counter:
        model(x)
    return counter.get_total_flops()


def cpu_peaks(threads: int) -> dict[str, float]:
    """Theoretical FLOP/s from the vector width, the cores used and the clock: fp32 FMA lanes
    x 2 FMA units x 2 FLOPs (AVX-512: 64 FLOPs/cycle; AVX2: 32); AVX512-BF16 doubles that for
    bf16; AMX tiles give 1024 bf16 FLOPs/cycle per core (Intel's figure). Cores that split
    512-bit operations in halves (AMD Zen 4) reach half of the AVX-512 figure."""
    flags = cpu_flags()
    mhz = 0.0
    try:
        with open("/proc/cpuinfo") as f:
            mhz = max(float(line.split(":")[1]) for line in f if line.startswith("cpu MHz"))
    except (OSError, ValueError):
        pass
    hz = mhz * 1e6 * threads
    fp32 = 64 if "avx512f" in flags else 32 if "avx2" in flags else 16
    bf16 = 1024 if "amx_bf16" in flags else 2 * fp32 if "avx512_bf16" in flags else fp32
    return {"fp32": fp32 * hz, "bf16": bf16 * hz, "clock_ghz": mhz / 1e3}


def gemm_peak(dtype: torch.dtype, n: int = 2048) -> float:
    """FLOP/s of a large square matmul at `dtype`: what the BLAS reaches on this machine."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def describe_machine(device: torch.device) -> None:
    flags = cpu_flags()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load:.2f}; CPU flags: "
        + ", ".join(f"{f}={'yes' if f in flags else 'no'}" for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16"))
        + f"; native bf16: {native_bf16()}"
    )
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}")


def contenders(ours, theirs, eager, official, device, precisions, compile_too) -> dict:
    """name -> (callable on a float32 batch, precision, family)."""
    run_theirs = lambda t: theirs(pixel_values=t).predicted_depth  # noqa: E731
    out: dict[str, tuple] = {}
    for p in precisions:
        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[p]
        if dtype is None:
            out["transformers fp32"] = (run_theirs, p, "transformers")
            out["transformers eager fp32"] = (lambda t: eager(pixel_values=t).predicted_depth, p, "reference")
            if official is not None:
                out["official fp32"] = (official, p, "reference")
        else:
            out[f"transformers {p} autocast"] = (autocast(run_theirs, device, dtype), p, "transformers")
            cast = copy.deepcopy(theirs).to(dtype)
            out[f"transformers {p} weights"] = (
                cast_input(lambda t, m=cast: m(pixel_values=t).predicted_depth, dtype),
                p,
                "transformers",
            )
        out[f"ours {p}"] = (lambda t, p=p: infer_network(ours, t, p), p, "ours")
        if compile_too:
            out[f"ours {p} compiled"] = (lambda t, p=p: infer_network(ours, t, p, compile=True), p, "ours")
    return out


def report(name, table, secs, outs, first, flops, peaks) -> None:
    ref = outs["ours fp32"]
    best_theirs = {}
    for key, (_, p, family) in table.items():
        if family == "transformers" and secs[key] < best_theirs.get(p, (float("inf"), ""))[0]:
            best_theirs[p] = (secs[key], key)
    for key, (_, p, family) in table.items():
        diff = ((outs[key] - ref).abs().max() / ref.abs().max()).item()
        line = f"{name}: {key:28s} {secs[key]:7.3f} s/img  max |diff| {diff:.1e} of max |ours fp32|"
        if family == "ours":
            base_secs, base = best_theirs[p]
            line += f"  {base_secs / secs[key]:5.2f}x {base}"
            if p != "fp32":
                line += f", {secs['ours fp32'] / secs[key]:4.2f}x ours fp32"
            if key.endswith("compiled"):
                line += f"; compiling took {first[key] - secs[key]:.1f} s"
            peak = peaks.get(p)
            if peak:
                line += (
                    f"; {flops / secs[key] / 1e12:.2f} TFLOP/s = {100 * flops / secs[key] / peak:.0f}% of the {p} peak"
                )
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vits", "vitl"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--precisions", nargs="+", help="default: fp32 bf16 on the CPU, fp32 fp16 bf16 on CUDA")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile contenders")
    parser.add_argument(
        "--official", type=Path, help="a checkout of DepthAnything/Depth-Anything-V2: time its network too"
    )
    args = parser.parse_args()

    device = select_device(args.device)
    precisions = args.precisions or (["fp32", "fp16", "bf16"] if device.type == "cuda" else ["fp32", "bf16"])
    if "fp32" not in precisions:
        precisions.insert(0, "fp32")  # the reference every difference is measured against
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    describe_machine(device)
    peaks: dict[str, float] = {}
    if device.type == "cpu":
        theory = cpu_peaks(torch.get_num_threads())
        peaks = {"fp32": gemm_peak(torch.float32), "bf16": gemm_peak(torch.bfloat16)}
        print(
            f"peak FLOP/s ({torch.get_num_threads()} cores at {theory['clock_ghz']:.2f} GHz): fp32 {theory['fp32'] / 1e12:.2f}"
            f" TFLOP/s, bf16 {theory['bf16'] / 1e12:.2f} TFLOP/s in theory; a 2048^3 matmul reaches fp32 "
            f"{peaks['fp32'] / 1e12:.2f}, bf16 {peaks['bf16'] / 1e12:.2f} TFLOP/s (the shares below are of this measured peak)"
        )
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(INPUT_SHAPE, dtype=np.float32)).to(device)
    square = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 3, 518, 518), dtype=np.float32)).to(device)
    for name in args.models:
        ours = build_model(name)
        ours.load_state_dict(deterministic_state_dict(ours), strict=True)
        flops = network_flops(ours, x.cpu())
        ours.to(device)
        theirs = transformers_model(ours).to(device)
        eager = transformers_model(ours, attention="eager").to(device)
        with torch.inference_mode():
            a, b = ours(square), theirs(pixel_values=square).predicted_depth
        print(
            f"{name}: {flops / 1e12:.3f} TFLOP per 518x784 image; transformers' default attention: "
            f"{transformers_attention(theirs)}; weight conversion check at 518x518 (no positional-embedding "
            f"resizing): max |diff| {((a - b).abs().max() / b.abs().max()).item():.1e}"
        )
        official = official_model(ours, args.official).to(device) if args.official else None
        table = contenders(ours, theirs, eager, official, device, precisions, not args.no_compile)
        secs, outs, first = interleaved_seconds({k: v[0] for k, v in table.items()}, x, args.repeats, sync)
        report(name, table, secs, outs, first, flops, peaks)
        if official is not None:
            print(f"{name}: ours fp32 is {secs['official fp32'] / secs['ours fp32']:.2f}x the official code")
        print(
            "  (transformers resizes the positional embedding to a size, the official code and ours by a "
            "scale factor: at 518x784 their outputs differ by the amount shown, at 518x518 they agree)"
        )
        del theirs, eager, official, table


if __name__ == "__main__":
    main()
