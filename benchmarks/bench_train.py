"""Training throughput (images/s) of one optimizer step -- forward, L_ssi + 2 L_gm, backward,
AdamW -- for a Depth Anything network on CPU, fp32 (baseline) vs bf16 autocast, same run
(interleaved steps, median time).

    python benchmarks/bench_train.py                      # vits, 518 x 518, batch 2, 3 timed steps
    python benchmarks/bench_train.py --model vit-tiny --size 224 --steps 10

Data loading is excluded (random tensors) so the numbers are the network's cost. bf16 on a CPU
without AVX512-BF16/AMX is emulated and usually slower than fp32; the script says which it is.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch

from da2k.models import get_variant, native_bf16
from da2k.models.train.engine import TrainConfig, freeze_unused, param_groups
from da2k.models.train.losses import SSIGradientLoss
from da2k.models.train.stages import init_model


def make_step(name: str, size: int, batch: int, dtype: torch.dtype | None) -> Callable[[], None]:
    """One full training step (forward, loss, backward, AdamW) on fixed random tensors."""
    torch.manual_seed(0)
    model = init_model(get_variant(name), "random")
    freeze_unused(model, torch.device("cpu"))
    model.train()
    cfg = TrainConfig(out_dir="", iters=1000)
    optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = SSIGradientLoss()
    x = torch.randn(batch, 3, size, size)
    target = torch.rand(batch, size, size) + 0.1
    mask = torch.ones(batch, size, size, dtype=torch.bool)

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype) if dtype else nullcontext():
            pred = model(x)
        loss_fn(pred.float(), target, mask).total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def timed(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vits")
    parser.add_argument("--size", type=int, default=518)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.model} training step at {args.size}x{args.size}, batch {args.batch}, {args.steps} timed steps, "
          f"{torch.get_num_threads()} threads, native bf16: {native_bf16()}")  # fmt: skip
    steps = {
        "fp32": make_step(args.model, args.size, args.batch, None),
        "bf16": make_step(args.model, args.size, args.batch, torch.bfloat16),
    }
    for step in steps.values():
        step()  # warm-up: allocator, kernels, optimizer state
    # Interleaved rounds and the median step time: other jobs on shared cores slow both alike.
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.steps):
        for key, step in steps.items():
            times[key].append(timed(step))
    rate = {k: args.batch / statistics.median(v) for k, v in times.items()}
    print(f"fp32 (baseline)  {rate['fp32']:8.3f} images/s   1.00x")
    print(f"bf16 autocast    {rate['bf16']:8.3f} images/s   {rate['bf16'] / rate['fp32']:.2f}x")


if __name__ == "__main__":
    main()
