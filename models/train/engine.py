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

import gc
import hashlib
import json
import logging
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
from da2k.models.files import atomic_write_text

from .data import EpochSampler
from .distributed import from_rank0, gather, init_distributed, leave_distributed, mean_across_ranks
from .state import MODEL_FILE, STATE_FILE, CsvLog, TrainLog, load_state, rng_state, save_state, set_rng_state

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")


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
    compile: bool = False  # torch.compile the training forward/backward (fixed crop size: one graph)
    device: str = "auto"
    seed: int = 0
    workers: int = 2
    log_every: int = 10
    save_every: int = 500
    eval_every: int = 0
    stop_after: int | None = None  # stop this run after that many steps (time-sliced jobs)
    resume: bool = True
    meta: dict = field(default_factory=dict)  # recorded in train.json (stage, variant, data)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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


@dataclass
class _Position:
    """Where a run stands; saved in `last.pt` with the RNG states, so a resumed run continues
    the same stream of batches and the same running loss window as if it had never stopped."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    consumed: int = 0  # micro-batches of this epoch
    window: dict[str, float] = field(default_factory=dict)  # this rank's loss sums since the last log row
    window_start: int = 0  # the step the window started after


class _Run:
    """One training run, in named steps: `setup`, `resume`, `catch_up_eval`, `loop`, `finish`."""

    def __init__(self, model, dataset, loss_fn, cfg: TrainConfig, evaluate: Callable[[Path, int], dict] | None):
        self.model, self.dataset, self.loss_fn, self.cfg, self.evaluate = model, dataset, loss_fn, cfg, evaluate
        self.d = init_distributed(cfg.device)
        self.out = Path(cfg.out_dir)
        self.pos = _Position()
        self.logger: TrainLog | None = None
        self.compiled = False  # --compile: whether the first (compiling) micro-step has run

    def setup(self) -> None:
        """Seeds, device, frozen parameters, DDP, optimizer, schedule, scaler and the loader."""
        cfg, d = self.cfg, self.d
        seed_everything(cfg.seed + d.rank)
        self.model.to(d.device)
        self.unused = freeze_unused(self.model, d.device)
        self.model.train()
        self.net = (
            DistributedDataParallel(self.model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
            if d.world > 1
            else self.model
        )
        if cfg.compile:
            self.net = torch.compile(self.net, dynamic=False)
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, cfg), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(cfg))
        self.scaler = torch.amp.GradScaler(d.device.type, enabled=cfg.precision == "fp16")
        self.amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.precision]
        sampler = DistributedSampler(
            self.dataset, num_replicas=d.world, rank=d.rank, shuffle=True, seed=cfg.seed, drop_last=True
        )
        if len(sampler) < cfg.batch_size:
            raise ModelError(
                f"{len(self.dataset)} training images are too few for {d.world} process(es) x batch {cfg.batch_size}"
            )
        self.epoch_sampler = EpochSampler(sampler)
        self.loader = DataLoader(
            self.dataset,
            batch_size=cfg.batch_size,
            sampler=self.epoch_sampler,
            num_workers=cfg.workers,
            drop_last=True,
            pin_memory=d.device.type == "cuda",
        )
        # Every rank must take part in the saves and barriers around evaluations, even those
        # that were given no evaluator (only rank 0 evaluates).
        self.evaluating = from_rank0(self.evaluate is not None, self.d)
        if d.main:
            self.out.mkdir(parents=True, exist_ok=True)

    def resume(self) -> None:
        """Continue from `OUT/last.pt` when there is one (and `cfg.resume`); write train.json."""
        d, state_file = self.d, self.out / STATE_FILE
        if self.cfg.resume and state_file.is_file():
            state = load_state(state_file)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            ranks = state["ranks"]
            self.pos = _Position(state["step"], state["epoch"], state["consumed"])
            if len(ranks) == d.world:
                set_rng_state(ranks[d.rank]["rng"])
                self.pos.window = dict(ranks[d.rank]["window"])
                self.pos.window_start = state["window_start"]
            else:
                log.warning("resuming with %d processes instead of %d: RNG streams restart", d.world, len(ranks))
                self.pos.window_start = self.pos.step
            if d.main:
                log.info("resumed from %s at step %d (epoch %d, batch %d)", state_file, *self._where())
        if d.main:
            self.logger = TrainLog(self.out, self.pos.step)
            self.eval_log = CsvLog(self.out / "eval.csv", self.pos.step)
            meta = {
                **self.cfg.meta,
                "config": {k: v for k, v in asdict(self.cfg).items() if k != "meta"},
                "world_size": d.world,
                "frozen": self.unused,
            }
            atomic_write_text(self.out / "train.json", json.dumps(meta, indent=1, default=str))

    def _where(self) -> tuple[int, int, int]:
        return self.pos.step, self.pos.epoch, self.pos.consumed

    def eval_due(self, step: int) -> bool:
        every = self.cfg.eval_every
        return self.evaluating and step > 0 and ((every and step % every == 0) or step == self.cfg.iters)

    def save(self) -> None:
        """`model.pt` (plain state dict) and `last.pt` (everything to resume), on rank 0."""
        ranks = gather({"rng": rng_state(), "window": dict(self.pos.window)}, self.d)
        if self.d.main:
            plain = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
            save_state(plain, self.out / MODEL_FILE)
            save_state(
                {
                    "model": plain,
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict(),
                    "step": self.pos.step,
                    "epoch": self.pos.epoch,
                    "consumed": self.pos.consumed,
                    "window_start": self.pos.window_start,
                    "ranks": ranks,
                },
                self.out / STATE_FILE,
            )
        if self.d.world > 1:
            dist.barrier()

    def run_eval(self) -> None:
        """Score `model.pt` (rank 0) and record the row in `eval.csv`."""
        step = self.pos.step
        if self.d.main and self.evaluate is not None:
            log.info("step %d: evaluating %s", step, self.out / MODEL_FILE)
            self.model.eval()
            row = {"step": step, **self.evaluate(self.out / MODEL_FILE, step)}
            self.model.train()
            self.eval_log.write(row)
            log.info("step %d eval %s", step, row)
        if self.d.world > 1:
            dist.barrier()

    def catch_up_eval(self) -> None:
        """An evaluation a kill interrupted (its row missing from eval.csv) runs again now, on
        the weights of that very step (those of `last.pt`): none is lost, the final one included."""
        step = self.pos.step
        missing = self.d.main and self.eval_due(step) and step not in self.eval_log.steps()
        if from_rank0(missing, self.d):
            if self.d.main:
                log.info("step %d: its evaluation did not finish before the run stopped; redoing it", step)
                plain = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
                save_state(plain, self.out / MODEL_FILE)
            self.run_eval()

    def micro_step(self, batch: dict) -> int:
        """Forward and backward on one micro-batch (gradients accumulate); returns its size.
        With --compile, the first one compiles and says how long that took."""
        cfg, d = self.cfg, self.d
        compiling = cfg.compile and not self.compiled
        started = time.perf_counter()
        sync = self.micro == cfg.accum
        ctx = self.net.no_sync() if (d.world > 1 and not sync) else nullcontext()
        with ctx:
            x = batch["image"].to(d.device, non_blocking=True)
            with torch.autocast(d.device.type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext():
                pred = self.net(x)
            result = self.loss_fn(pred.float(), batch["target"].to(d.device), batch["mask"].to(d.device))
            self.scaler.scale(result.total / cfg.accum).backward()
        if compiling:
            self.compiled = True
            log.info(
                "compiled the training step in %.1f s (counted in the first images_per_s)",
                time.perf_counter() - started,
            )
        window = self.pos.window
        for key, value in {"loss": float(result.total.detach()), **result.parts}.items():
            window[key] = window.get(key, 0.0) + value / cfg.accum
        return x.shape[0]

    def optimizer_step(self) -> None:
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.pos.step += 1

    def log_row(self) -> None:
        """One `log.csv` row: the window's mean losses (over ranks), learning rates, speed."""
        pos, d = self.pos, self.d
        means = mean_across_ranks({k: v / (pos.step - pos.window_start) for k, v in pos.window.items()}, d)
        now = time.perf_counter()
        if d.main:
            row = {
                "step": pos.step,
                "epoch": pos.epoch,
                **{f"train_{k}": round(v, 6) for k, v in means.items()},
                "lr_encoder": self.optimizer.param_groups[0]["lr"],
                "lr_decoder": self.optimizer.param_groups[1]["lr"],
                "images_per_s": round(self.images * d.world / (now - self.last_time), 3),
                "elapsed_s": round(now - self.run_start, 2),
            }
            self.logger.write(row)
            log.info("step %d/%d loss %.4f", pos.step, self.cfg.iters, means["loss"])
        pos.window, pos.window_start = {}, pos.step
        self.images, self.last_time = 0, now

    def after_step(self, started_at: int) -> bool:
        """Log, save, evaluate as due after an optimizer step; True when the run should stop."""
        cfg, step = self.cfg, self.pos.step
        if step % cfg.log_every == 0 or step == cfg.iters:
            self.log_row()
        stop = step >= cfg.iters or (cfg.stop_after is not None and step - started_at >= cfg.stop_after)
        eval_due = self.eval_due(step)
        if step % cfg.save_every == 0 or stop or eval_due:
            self.save()  # evaluation reads the saved weights
        if eval_due:
            self.run_eval()
        return stop

    def loop(self) -> None:
        """Micro-batches until `iters` optimizer steps (or `stop_after` more) are done."""
        cfg, pos = self.cfg, self.pos
        started_at, self.micro, self.images = pos.step, 0, 0
        self.run_start = self.last_time = time.perf_counter()
        done = pos.step >= cfg.iters
        while not done:
            self.epoch_sampler.set_position(pos.epoch, pos.consumed * cfg.batch_size)
            for batch in self.loader:
                self.micro += 1
                self.images += self.micro_step(batch)
                pos.consumed += 1
                if self.micro < cfg.accum:
                    continue
                self.micro = 0
                self.optimizer_step()
                if self.after_step(started_at):
                    done = True
                    break
            else:
                pos.epoch, pos.consumed = pos.epoch + 1, 0

    def finish(self) -> Path:
        """Check that every rank holds the same weights (`ranks.json`); close the logs."""
        digests = gather(weights_digest(self.model), self.d)
        if self.d.main:
            body = json.dumps({"step": self.pos.step, "weights_sha256": digests}, indent=1)
            atomic_write_text(self.out / "ranks.json", body)
            if len(set(digests)) > 1:
                log.error("ranks hold different weights after step %d: %s", self.pos.step, digests)
        if self.logger is not None:
            self.logger.close()
        return self.out / MODEL_FILE

    def close(self) -> None:
        """Leave the process group. The DDP wrapper's reducer holds the group and its pending
        work: freed only at interpreter exit, gloo's threads go with it and abort a rank now and
        then, so the wrapper goes first."""
        self.net = None
        gc.collect()
        leave_distributed(self.d)


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
    returns numbers for `eval.csv`; an evaluation a kill interrupted is redone on resume.
    """
    _check(cfg)
    run = _Run(model, dataset, loss_fn, cfg, evaluate)
    run.setup()
    run.resume()
    run.catch_up_eval()
    run.loop()
    model_file = run.finish()
    run.close()
    return model_file


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 over every state-dict tensor's bytes, in key order: equal iff weights are equal."""
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
