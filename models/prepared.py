"""Inference copies of our network: made once per model, device, precision and compile choice,
then reused for every batch `infer_network` runs.

What a copy does differently from the module that was built or trained (same function):

* LayerScale is folded into the layer before it (`attn.proj`, `mlp.fc2`/`w3`) once, so a forward
  does no weight arithmetic and holds no hidden per-call cache (which also keeps
  `torch.compile` from recompiling);
* the weights are cast once to the precision's dtype, so autocast does not re-cast them at
  every call (vitl: 335M weights);
* bf16 runs with bf16 activations end to end, without autocast: matmuls and convolutions go to
  oneDNN's bf16 kernels, layer norm and softmax keep fp32 statistics inside their kernels, the
  output is returned as fp32. fp16 (CUDA) keeps autocast on top of fp16 weights, so layer norm
  and softmax run in fp32;
* on CPUs with AVX512-BF16 but no AMX, attention runs as blocked GEMMs
  (`vit.chunked_attention`), about twice as fast there as the fused flash kernel;
* with `compile=True`, the copy is `torch.compile`d (whole graph, static shapes): one graph per
  network input size, built on the first batch of that size and reused after; the seconds spent
  compiling are counted apart (`Prepared.compile_seconds`).

A copy is rebuilt when the model's parameters change (training updates them in place and bumps
their version counters) or move to another device. fp32 copies share every weight but the
folded ones with the model.
"""

from __future__ import annotations

import copy
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .runtime import Precision, cpu_flags
from .vit import Attention, Block, fold_layer_scale

logger = logging.getLogger(__name__)

QUERY_CHUNK = 128  # queries per block in chunked attention: the (heads, 128, N) scores stay in L2
RECOMPILE_LIMIT = 64  # compiled input sizes kept per copy (dynamo's default, 8, is too few for a benchmark)


@dataclass
class Prepared:
    """One inference copy: `net` (eager) and `run` (compiled or `net`), the precision it runs at,
    the input shapes it has seen and the seconds their first calls took when compiling."""

    fingerprint: tuple
    net: nn.Module
    run: Callable[[torch.Tensor], torch.Tensor]
    precision: Precision
    shapes: set = field(default_factory=set)
    compile_seconds: float = 0.0

    @property
    def compiled(self) -> bool:
        return self.run is not self.net

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        device = next(self.net.parameters()).device
        # Contiguous: a compiled graph is specialised on strides as well as on the shape.
        x = x.to(device, dtype=self.precision.dtype or torch.float32, non_blocking=True).contiguous()
        first = self.compiled and tuple(x.shape) not in self.shapes
        started = time.perf_counter()
        with torch.inference_mode(), _autocast(self.precision, device):
            out = self.run(x)
        if first:
            self.shapes.add(tuple(x.shape))
            seconds = time.perf_counter() - started
            self.compile_seconds += seconds
            logger.info("compiled the network for input %s in %.1f s", "x".join(map(str, x.shape)), seconds)
        return out.float()


_copies: weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, bool], Prepared]] = weakref.WeakKeyDictionary()


def prepared(model: nn.Module, precision: Precision, compile: bool = False) -> Prepared:
    """The inference copy of `model` at `precision` (made now, or reused while the model's
    parameters are unchanged)."""
    fingerprint = _fingerprint(model)
    copies = _copies.setdefault(model, {})
    key = (precision.name, compile)
    found = copies.get(key)
    if found is None or found.fingerprint != fingerprint:
        net = inference_copy(model, precision)
        run = _compile(net) if compile else net
        found = copies[key] = Prepared(fingerprint, net, run, precision)
    return found


def inference_copy(model: nn.Module, precision: Precision) -> nn.Module:
    """`model` with weights in the precision's dtype, LayerScale folded and, where it is faster,
    chunked attention; eval mode, no gradients. The model itself is not changed."""
    dtype = precision.dtype or torch.float32
    memo: dict[int, object] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(_cast(p, dtype), requires_grad=False)
    for b in model.buffers():
        memo[id(b)] = _cast(b, dtype)
    net = copy.deepcopy(model, memo).eval()
    with torch.no_grad():
        for src, dst in zip(model.modules(), net.modules()):
            if isinstance(src, Block):
                for layer, out, scale in ((dst.attn.proj, src.attn.proj, src.ls1), (dst.mlp.out, src.mlp.out, src.ls2)):
                    weight, bias = fold_layer_scale(out, scale)  # from the fp32 weights, then cast
                    layer.weight = nn.Parameter(weight.to(dtype), requires_grad=False)
                    layer.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
                dst.folded = True
    if _chunked_attention_pays(precision, next(model.parameters()).device):
        for module in net.modules():
            if isinstance(module, Attention):
                module.query_chunk = QUERY_CHUNK
    return net


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    t = t.detach()
    return t.to(dtype) if t.is_floating_point() else t  # fp32 -> fp32 shares the storage


def _chunked_attention_pays(precision: Precision, device: torch.device) -> bool:
    # Measured on AVX512-BF16 without AMX (torch 2.13, 2 cores): 25 ms vs 49-61 ms per vits block,
    # 72-78 ms vs 127 ms per vitl block at 518x784. With AMX the flash kernel uses the tiles.
    flags = cpu_flags()
    return device.type == "cpu" and precision.dtype == torch.bfloat16 and "amx_bf16" not in flags


def _autocast(precision: Precision, device: torch.device):
    # bf16 copies run natively; fp16 keeps autocast so layer norm and softmax run in fp32.
    return torch.autocast(device.type, dtype=torch.float16, enabled=precision.dtype == torch.float16)


def _compile(net: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    import torch._dynamo.config as dynamo_config

    for name in ("recompile_limit", "cache_size_limit"):  # renamed in torch 2.6; both kept since
        if getattr(dynamo_config, name, RECOMPILE_LIMIT) < RECOMPILE_LIMIT:
            setattr(dynamo_config, name, RECOMPILE_LIMIT)
    return torch.compile(net, fullgraph=True, dynamic=False)


def _fingerprint(model: nn.Module) -> tuple:
    """What a copy depends on: each parameter's storage, version and device."""
    try:
        return tuple((p.data_ptr(), p._version, p.device) for p in model.parameters())
    except RuntimeError:  # parameters made under inference_mode have no version counter
        return tuple((p.data_ptr(), p.device) for p in model.parameters())


def compile_seconds(model: nn.Module) -> float:
    """Seconds spent compiling `model`'s copies so far (0 when none was compiled)."""
    return sum(p.compile_seconds for p in _copies.get(model, {}).values())
