"""Throughput of `da2k evaluate` on DA-2K-sized images: images per minute, the projected time
for the whole benchmark, and how much of the wall time is not the network.

A DA-2K-style benchmark is built from tests/fixtures/demo01.jpg resized to DA-2K's typical
2000 x 1500 (one image in six 4800 x 3200, as DA-2K's largest), one in three stored rotated under
an EXIF orientation tag, two pairs per image as in DA-2K. Models get deterministic weights
(da2k.models.parity) unless `--weights` is given. For each model and precision,
`da2k.evaluate.evaluate` runs as the command does (validation, then decode/resize in worker
threads overlapping the forward, fresh cache); `--split` also times each stage on its own, image
after image.

    python benchmarks/bench_evaluate.py --models vits vitl --precisions fp32 bf16 --images 12
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from da2k.benchmark import load_benchmark, validate
from da2k.evaluate import evaluate, pair_points
from da2k.models import build_model, cpu_flags, to_network_input
from da2k.models.parity import deterministic_state_dict
from da2k.predictors import PredictorOptions, make_predictor
from da2k.scoring import pair_correct, sample_bilinear, to_disparity

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "demo01.jpg"
DA2K_IMAGES = 1033  # images in the released DA-2K
TYPICAL, LARGEST = (2000, 1500), (4800, 3200)  # (width, height) of most DA-2K images / the largest


def build_bench(root: Path, n_images: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    typical = Image.open(FIXTURE).convert("RGB").resize(TYPICAL, Image.Resampling.BICUBIC)
    largest = typical.resize(LARGEST, Image.Resampling.BICUBIC)
    annotations = {}
    for i in range(n_images):
        source = largest if i % 6 == 5 else typical
        key = f"images/{('indoor', 'outdoor', 'object')[i % 3]}/img{i:03d}.jpg"
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        if i % 3 == 1:  # stored rotated, displayed upright through EXIF orientation 6
            exif = Image.Exif()
            exif[0x0112] = 6
            source.transpose(Image.Transpose.ROTATE_90).save(root / key, quality=95, exif=exif.tobytes())
        else:
            source.save(root / key, quality=95)
        h, w = source.height, source.width
        annotations[key] = [
            {
                "point1": [int(rng.integers(h)), int(rng.integers(w))],
                "point2": [int(rng.integers(h)), int(rng.integers(w))],
                "closer_point": "point1",
            }
            for _ in range(2)
        ]
    (root / "annotations.json").write_text(json.dumps(annotations))
    return root


def deterministic_weights(name: str, folder: Path) -> Path:
    model = build_model(name)
    model.load_state_dict(deterministic_state_dict(model))
    path = folder / f"{name}.pth"
    torch.save(model.state_dict(), path)
    return path


def split_seconds(bench, predictor) -> dict[str, float]:
    """Seconds per image of each stage run on its own, image after image."""
    variant = predictor.variant
    t = time.perf_counter()
    report = validate(bench)
    validate_s = time.perf_counter() - t
    split = {"decode": [], "resize": [], "forward": [], "score": []}
    predictor.forward(predictor.prepare("", lambda: bench.load_image(bench.keys()[0])))  # warm-up
    for key in bench.keys():
        t0 = time.perf_counter()
        image = bench.load_image(key)
        t1 = time.perf_counter()
        x = to_network_input(image, predictor.input_size, variant.mean, variant.std)
        t2 = time.perf_counter()
        pred = predictor.forward(x)
        t3 = time.perf_counter()
        pairs = bench.pairs(key)
        values = to_disparity(
            sample_bilinear(pred.values, pair_points(pairs), report.sizes[key], pred.align_corners), pred.kind
        )
        pair_correct(values[: len(pairs)], values[len(pairs) :])
        t4 = time.perf_counter()
        for name, seconds in zip(split, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            split[name].append(seconds)
    n = len(bench.keys())
    per = {name: sum(v) / n for name, v in split.items()}
    per["decode"] += validate_s / n  # evaluate validates (decodes) every image first
    return per


def print_split(per: dict[str, float]) -> None:
    total = sum(per.values())
    print("  split (stages one after another), seconds per image:")
    for name in ("decode", "resize", "forward", "score"):
        label = "decode (+validation)" if name == "decode" else name
        print(f"    {label:<22} {per[name]:8.4f}  {100 * per[name] / total:5.1f} %")
    print(f"    {'total':<22} {total:8.4f}   non-forward {100 * (total - per['forward']) / total:.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["vits", "vitl"])
    parser.add_argument("--weights", help="checkpoint for a single --models entry (default: deterministic weights)")
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--input-size", type=int, default=518)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--workers", type=int, default=2, help="decoding threads (as da2k evaluate --workers)")
    parser.add_argument("--split", action="store_true", help="also time each stage on its own")
    args = parser.parse_args()

    flags = sorted({"avx2", "avx512f", "avx512_bf16", "amx_bf16"} & cpu_flags())
    print(
        f"{args.images} images ({TYPICAL[0]}x{TYPICAL[1]}, every sixth {LARGEST[0]}x{LARGEST[1]}; one in three "
        f"EXIF-rotated), 2 pairs each, input size {args.input_size}, {torch.get_num_threads()} threads, device "
        f"{args.device}, {args.workers} decoding workers, CPU flags: {' '.join(flags) or 'none'}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bench = load_benchmark(build_bench(tmp / "bench", args.images))
        for name in args.models:
            weights = args.weights or deterministic_weights(name, tmp)
            for precision in args.precisions:
                options = PredictorOptions(
                    weights=str(weights), input_size=args.input_size, device=args.device, precision=precision
                )
                predictor = make_predictor(name, options)
                predictor.forward(predictor.prepare("", lambda: bench.load_image(bench.keys()[0])))  # warm-up
                cache = tmp / f"cache-{name}-{precision}"
                outcome = evaluate(
                    bench,
                    predictor,
                    tmp / "results",
                    cache_dir=cache,
                    progress=False,
                    workers=args.workers,
                    name=f"{name}-{precision}",
                )
                n = outcome.computed
                wall, forward = outcome.result["wall_time_s"], outcome.timings["forward_s"]
                print(
                    f"{name} {predictor.settings['precision']}: {60 * n / wall:.1f} images/min, "
                    f"{wall / n:.3f} s/image (forward {forward / n:.3f}), non-forward {100 * (wall - forward) / wall:.1f} % "
                    f"of the wall time; {DA2K_IMAGES} images would take {DA2K_IMAGES * wall / n / 60:.1f} min"
                )
                if args.split:
                    print_split(split_seconds(bench, predictor))


if __name__ == "__main__":
    main()
