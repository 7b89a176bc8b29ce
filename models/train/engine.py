"""The training loop: PyTorch DDP under `torchrun`, gradient accumulation, autocast, exact resume.

    torchrun --nproc_per_node 8 --no-python da2k train teacher ...        # one node
    torchrun --nnodes 4 --nproc_per_node 8 --rdzv_id RUN --rdzv_backend c10d \
        --rdzv_endpoint $HEAD:29500 --no-python da2k train teacher ...    # four nodes

`RANK`, `LOCAL_RANK` and `WORLD_SIZE` come from the environment torchrun sets (absent: one
process). Only rank 0 logs (CSV, TensorBoard if installed) and writes files; every rank seeds
with `seed + rank`. Data order comes from a `DistributedSampler` (seeded, re-shuffled per epoch)
and per-sample augmentation generators (see `data.py`), so a checkpoint that records (epoch,
batches consumed) plus model, optimizer, scheduler, scaler and RNG states resumes bit-exactly.
"""

from __future__ import annotations

import atexit
import csv
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from da2k.models.errors import ModelError
from da2k.models.files import atomic_write

from .data import EpochSampler

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")
STATE_FILE = "last.pt"
MODEL_FILE = "model.pt"


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping. Defaults follow the paper / official fine-tuning code:
    AdamW (0.9, 0.999), weight decay 0.01, encoder lr 5e-6, decoder 10x, poly decay (power 0.9)."""

    out_dir: str
    iters: int
    batch_size: int = 4  # per process and micro-step; global batch = batch_size * accum * world
    accum: int = 1
    lr: float = 5e-6
    decoder_lr_mult: float = 10.0
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "poly"  # "poly" (1 - t/T)^power or "linear" (power 1)
    power: float = 0.9
    warmup: int = 0
    precision: str = "fp32"
    device: str = "auto"
    seed: int = 0
    workers: int = 2
    log_every: int = 10
    save_every: int = 500
    eval_every: int = 0
    stop_after: int | None = None  # stop this run after that many steps (time-sliced jobs)
    resume: bool = True
    meta: dict = field(default_factory=dict)  # recorded in train.json (stage, variant, data)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group (gloo on CPU, NCCL on GPUs); a lone process needs none."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        # Leaving with a live process group lets gloo's threads die with the interpreter
        # ("terminate called without an active exception", exit -6) on some ranks.
        atexit.register(_leave_process_group)
    return DistInfo(rank, local_rank, world, dev)


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def freeze_unused(model: torch.nn.Module, device: torch.device) -> list[str]:
    """Stop training parameters the forward pass never touches (DINOv2's `mask_token`, the
    skip-less `refinenet4.resConfUnit1`): DDP requires every trainable parameter to get a
    gradient each step, and `find_unused_parameters=True` would cost a graph walk per step."""
    probe = torch.zeros(1, 3, 28, 28, device=device)
    model.zero_grad(set_to_none=True)
    model(probe).sum().backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    for name, p in model.named_parameters():
        p.grad = None
        if name in unused:
            p.requires_grad_(False)
    return unused


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict]:
    """Encoder (`pretrained.*`) at lr, everything else (the DPT head) at lr x decoder_lr_mult."""
    enc = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("pretrained.")]
    dec = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("pretrained.")]
    return [
        {"params": enc, "lr": cfg.lr, "name": "encoder"},
        {"params": dec, "lr": cfg.lr * cfg.decoder_lr_mult, "name": "decoder"},
    ]


def lr_factor(cfg: TrainConfig) -> Callable[[int], float]:
    """Multiplier of the base lr after `step` optimizer steps: linear warmup, then poly/linear."""
    power = 1.0 if cfg.schedule == "linear" else cfg.power

    def factor(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        return max(0.0, 1.0 - step / cfg.iters) ** power

    return factor


def _check(cfg: TrainConfig) -> None:
    if cfg.precision not in PRECISIONS:
        raise ModelError(f"--precision must be one of {', '.join(PRECISIONS)}, not {cfg.precision!r}")
    if cfg.schedule not in ("poly", "linear"):
        raise ModelError(f"--schedule must be poly or linear, not {cfg.schedule!r}")
    if cfg.iters < 1 or cfg.batch_size < 1 or cfg.accum < 1:
        raise ModelError("--iters, --batch-size and --accum must be at least 1")


class _Logger:
    """Rank 0's CSV (and TensorBoard, when installed) writer; rows past a resumed step are
    dropped so the log matches the resumed run."""

    def __init__(self, out: Path, start_step: int) -> None:
        self.path = out / "log.csv"
        self.fields: list[str] | None = None
        if self.path.is_file():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
            if rows:
                self.fields = list(rows[0])
                with open(self.path, "w", newline="") as f:
                    writer = csv.DictWriter(f, self.fields)
                    writer.writeheader()
                    writer.writerows(rows)
            else:
                self.path.unlink()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tb"), purge_step=start_step + 1)
        except ImportError:  # tensorboard is optional
            self.tb = None

    def write(self, row: dict) -> None:
        if self.fields is None:
            self.fields = list(row)
            with open(self.path, "w", newline="") as f:
                csv.DictWriter(f, self.fields).writeheader()
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(row)
        if self.tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key.replace("_", "/", 1), value, row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _atomic_save(obj, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _gather(obj, d: DistInfo) -> list:
    if d.world == 1:
        return [obj]
    out: list = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def _mean_across_ranks(values: dict[str, float], d: DistInfo) -> dict[str, float]:
    if d.world == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return {k: float(v) / d.world for k, v in zip(keys, t.tolist())}


def train(
    model: torch.nn.Module,
    dataset: torch.utils.data.Dataset,
    loss_fn: torch.nn.Module,
    cfg: TrainConfig,
    evaluate: Callable[[Path, int], dict] | None = None,
) -> Path:
    """Train `model` (a DepthAnything) on `dataset` samples {image, target, mask} with `loss_fn`
    for `cfg.iters` optimizer steps; returns the plain state-dict file (`out_dir/model.pt`).

    `evaluate(model_file, step)` runs on rank 0 every `eval_every` steps (and at the end) and
    returns numbers for `eval.csv`.
    """
    _check(cfg)
    d = init_distributed(cfg.device)
    out = Path(cfg.out_dir)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed + d.rank)

    model.to(d.device)
    unused = freeze_unused(model, d.device)
    model.train()
    net = (
        DistributedDataParallel(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
        if d.world > 1
        else model
    )
    optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg))
    scaler = torch.amp.GradScaler(d.device.type, enabled=cfg.precision == "fp16")
    amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.precision]

    sampler = DistributedSampler(
        dataset, num_replicas=d.world, rank=d.rank, shuffle=True, seed=cfg.seed, drop_last=True
    )
    if len(sampler) < cfg.batch_size:
        raise ModelError(
            f"{len(dataset)} training images are too few for {d.world} process(es) x batch {cfg.batch_size}"
        )
    epoch_sampler = EpochSampler(sampler)
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=epoch_sampler,
        num_workers=cfg.workers,
        drop_last=True,
        pin_memory=d.device.type == "cuda",
    )

    step, epoch, consumed = 0, 0, 0  # optimizer steps, epoch, micro-batches of this epoch
    state_file = out / STATE_FILE
    if cfg.resume and state_file.is_file():
        state = torch.load(state_file, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        step, epoch, consumed = state["step"], state["epoch"], state["consumed"]
        if len(state["rng"]) == d.world:
            _set_rng_state(state["rng"][d.rank])
        else:
            log.warning("resuming with %d processes instead of %d: RNG streams restart", d.world, len(state["rng"]))
        if d.main:
            log.info("resumed from %s at step %d (epoch %d, batch %d)", state_file, step, epoch, consumed)

    logger = _Logger(out, step) if d.main else None
    if d.main:
        meta = {
            **cfg.meta,
            "config": {k: v for k, v in asdict(cfg).items() if k != "meta"},
            "world_size": d.world,
            "frozen": unused,
        }
        (out / "train.json").write_text(json.dumps(meta, indent=1, default=str))

    def save() -> None:
        rng = _gather(_rng_state(), d)
        if d.main:
            plain = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            _atomic_save(plain, out / MODEL_FILE)
            _atomic_save(
                {
                    "model": plain,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "step": step,
                    "epoch": epoch,
                    "consumed": consumed,
                    "rng": rng,
                },
                state_file,
            )
        if d.world > 1:
            dist.barrier()

    def run_eval() -> None:
        if d.main and evaluate is not None:
            model.eval()
            row = {"step": step, **evaluate(out / MODEL_FILE, step)}
            model.train()
            with open(out / "eval.csv", "a", newline="") as f:
                writer = csv.DictWriter(f, list(row))
                if f.tell() == 0:
                    writer.writeheader()
                writer.writerow(row)
            log.info("step %d eval %s", step, row)
        if d.world > 1:
            dist.barrier()

    started_at, last_time, images = step, time.perf_counter(), 0
    run_start = last_time
    window: dict[str, float] = {}
    window_start = step
    micro = 0
    done = step >= cfg.iters
    while not done:
        epoch_sampler.set_position(epoch, consumed * cfg.batch_size)
        for batch in loader:
            micro += 1
            sync = micro == cfg.accum
            ctx = net.no_sync() if (d.world > 1 and not sync) else nullcontext()
            with ctx:
                x = batch["image"].to(d.device, non_blocking=True)
                with torch.autocast(d.device.type, dtype=amp_dtype) if amp_dtype else nullcontext():
                    pred = net(x)
                result = loss_fn(pred.float(), batch["target"].to(d.device), batch["mask"].to(d.device))
                scaler.scale(result.total / cfg.accum).backward()
            consumed += 1
            images += x.shape[0]
            for key, value in {"loss": float(result.total.detach()), **result.parts}.items():
                window[key] = window.get(key, 0.0) + value / cfg.accum
            if not sync:
                continue
            micro = 0
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1

            if step % cfg.log_every == 0 or step == cfg.iters:
                steps_in_window = step - window_start
                means = _mean_across_ranks({k: v / steps_in_window for k, v in window.items()}, d)
                now = time.perf_counter()
                if d.main:
                    row = {
                        "step": step,
                        "epoch": epoch,
                        **{f"train_{k}": round(v, 6) for k, v in means.items()},
                        "lr_encoder": optimizer.param_groups[0]["lr"],
                        "lr_decoder": optimizer.param_groups[1]["lr"],
                        "images_per_s": round(images * d.world / (now - last_time), 3),
                        "elapsed_s": round(now - run_start, 2),
                    }
                    logger.write(row)
                    log.info("step %d/%d loss %.4f", step, cfg.iters, means["loss"])
                window, images, last_time, window_start = {}, 0, now, step
            stop = step >= cfg.iters or (cfg.stop_after is not None and step - started_at >= cfg.stop_after)
            eval_due = evaluate is not None and ((cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.iters)
            if step % cfg.save_every == 0 or stop or eval_due:
                save()  # evaluation reads the saved weights
            if eval_due:
                run_eval()
            if stop:
                done = True
                break
        else:
            epoch, consumed = epoch + 1, 0
    digests = _gather(weights_digest(model), d)
    if d.main:
        (out / "ranks.json").write_text(json.dumps({"step": step, "weights_sha256": digests}, indent=1))
        if len(set(digests)) > 1:
            log.error("ranks hold different weights after step %d: %s", step, digests)
    if logger is not None:
        logger.close()
    return out / MODEL_FILE


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 over every state-dict tensor's bytes, in key order: equal iff weights are equal."""
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
