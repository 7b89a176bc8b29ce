"""Mining throughput with four expert models on CPU, and the share of time spent outside them.

Baseline, measured in the same run: the four experts' forward passes alone on inputs prepared
beforehand (the irreducible cost). Then `da2k mine` on the same images into a fresh SQLite
store: hashing, decoding, point proposal, expert preprocessing (in worker threads), sampling,
voting and database writes come on top. Goal: <= 10 % of the mining time outside the forwards.

Experts get deterministic weights (da2k.models.parity): speed does not depend on their values.

    python benchmarks/bench_mine.py --images PHOTOS_DIR --limit 4
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from da2k.mining import load_experts, mine, scan_images
from da2k.models import build_model, load_image
from da2k.models.parity import deterministic_state_dict
from da2k.store import Store

DEFAULT_EXPERTS = ("vits", "v1-vits", "metric-hypersim-vits", "vit-tiny")


def save_weights(name: str, folder: Path) -> Path:
    model = build_model(name)
    path = folder / f"{name}.pth"
    torch.save(deterministic_state_dict(model), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "images")
    parser.add_argument("--limit", type=int, default=4, help="Images to mine.")
    parser.add_argument("--experts", nargs="+", default=list(DEFAULT_EXPERTS))
    parser.add_argument("--input-size", type=int, default=518)
    parser.add_argument("--pairs-per-image", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "images" / "outdoor"
        folder.mkdir(parents=True)
        files = scan_images(args.images)[: args.limit]
        for f in files:  # a private copy: the scenario folder and nothing else
            (folder / f.path.name).symlink_to(f.path.resolve())
        store = Store(tmp / "bench.db")
        specs = [f"{name};weights={save_weights(name, tmp)};input_size={args.input_size}" for name in args.experts]
        experts = load_experts(store, specs, device="cpu", precision="fp32")

        # Baseline: forward passes only, inputs prepared beforehand (one warm-up image first).
        images = [load_image(f.path) for f in files]
        prepared = [[e.predictor.prepare(f.rel, lambda im=im: im) for e in experts] for f, im in zip(files, images)]

        def forwards_only() -> tuple[float, float]:
            """(wall seconds, CPU seconds of this process) for every forward pass."""
            start, cpu = time.perf_counter(), time.process_time()
            for row in prepared:
                for expert, item in zip(experts, row):
                    expert.predictor.forward(item)
            return time.perf_counter() - start, time.process_time() - cpu

        for expert, item in zip(experts, prepared[0]):
            expert.predictor.forward(item)
        baselines = [forwards_only()]
        cpu = time.process_time()
        report = mine(
            store, tmp / "images", experts, pairs_per_image=args.pairs_per_image, points="felzenszwalb", progress=False
        )
        mine_cpu = time.process_time() - cpu
        baselines.append(forwards_only())  # before and after: the faster one, on a shared machine
        baseline, baseline_cpu = min(b[0] for b in baselines), min(b[1] for b in baselines)
        store.close()

    n = len(files)
    forward = sum(report.expert_seconds.values())
    print(
        f"{n} images, experts: {', '.join(args.experts)} (input size {args.input_size}), "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        f"baseline (forward passes only): {baseline:7.2f} s  {60 * n / baseline:6.1f} images/min"
        f"  (runs: {', '.join(f'{b[0]:.2f}' for b in baselines)} s; CPU {baseline_cpu:.2f} s)"
    )
    print(
        f"da2k mine (end to end):         {report.wall_seconds:7.2f} s  {60 * n / report.wall_seconds:6.1f} images/min"
        f"  (CPU {mine_cpu:.2f} s)"
    )
    print(f"mining / baseline: wall {report.wall_seconds / baseline:.3f}x, CPU time {mine_cpu / baseline_cpu:.3f}x")
    print(
        f"share of mining time outside the experts' forward passes: {report.outside_experts_share:.1%} "
        f"(forwards {forward:.2f} s of {report.wall_seconds:.2f} s; goal <= 10%)"
    )
    print(f"pairs: {report.pairs_added}, statuses: {dict(report.statuses)}, failed: {len(report.failed)}")


if __name__ == "__main__":
    main()
