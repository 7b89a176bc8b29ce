"""Where and at what precision a network runs: the one device choice and the one precision rule.

Every predictor (ours, transformers, diffusers) and training resolve `--device` and
`--precision` here, so one flag means the same everywhere and the result records what ran.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import torch

from .errors import ModelError

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def select_device(spec: str | torch.device = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is absent is an error."""
    if isinstance(spec, torch.device):
        return spec
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    if spec == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError("--device mps asked for, but MPS is not available; use --device cpu")
    try:
        return torch.device(spec)
    except RuntimeError:
        raise ModelError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps") from None


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """CPU feature flags that matter for speed (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AVX512-BF16 or AMX); elsewhere autocast
    to bf16 is emulated and several times slower than fp32."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


@dataclass(frozen=True)
class Precision:
    """A resolved precision: `name` (fp32, bf16 or fp16, what results record) and the autocast
    `dtype` (None: plain fp32)."""

    name: str
    dtype: torch.dtype | None

    def autocast(self, device: torch.device):
        """The autocast context for this precision on `device` (a no-op for fp32)."""
        return torch.autocast(device.type, dtype=self.dtype, enabled=self.dtype is not None)


_warned_bf16 = False


def _auto(device: torch.device, supported: tuple[str, ...]) -> str:
    if device.type == "cuda" and "fp16" in supported:
        return "fp16"
    if device.type == "cpu" and native_bf16() and "bf16" in supported:
        return "bf16"
    return "fp32"


def resolve_precision(
    precision: str, device: str | torch.device, *, supported: tuple[str, ...] = ("fp32", "bf16", "fp16"), who: str = ""
) -> Precision:
    """`auto|fp32|bf16|fp16` on `device` -> the precision that will run.

    auto: fp16 on CUDA, bf16 on CPUs with native bf16, else fp32 (restricted to `supported`).
    An explicit precision that the device or the predictor (`who`, `supported`) cannot run is a
    `ModelError`, never a silent change."""
    global _warned_bf16
    device = select_device(device)
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    name = _auto(device, supported) if precision == "auto" else precision
    if name not in supported:
        raise ModelError(f"{who or 'this model'} cannot run at {name}; use --precision {' or '.join(supported)}")
    if name == "fp16" and device.type == "cpu":
        raise ModelError("fp16 is for GPUs; on the CPU use --precision fp32 or bf16")
    if name == "bf16" and device.type == "cpu" and not native_bf16() and not _warned_bf16:
        logger.warning("this CPU has no native bf16 (avx512_bf16/amx): bf16 autocast will be slower than fp32")
        _warned_bf16 = True
    return Precision(name, _DTYPES[name])


# Reduced precisions `auto` may pick when the result is a score. Measured with
# benchmarks/bench_precision.py (torch 2.13 CPU, AVX512-BF16): bf16 keeps the order of only
# 99.13-99.90 % of point pairs that fp32 orders (vits, vitl, a trained vit-tiny; 49,000 pairs on
# photos and a synthetic benchmark), under the 99.9 % a score needs; fp16 is not measured yet.
SCORING_AUTO: tuple[str, ...] = ()


def scoring_precision(precision: str) -> str:
    """The precision to score a benchmark at when `precision` was asked for: `auto` becomes fp32
    unless a reduced precision is in `SCORING_AUTO`; an explicit choice is kept."""
    if precision != "auto":
        return precision
    return SCORING_AUTO[0] if SCORING_AUTO else "fp32"


def autocast_dtype(precision: str, device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype of `resolve_precision` (None means plain fp32)."""
    return resolve_precision(precision, device).dtype
