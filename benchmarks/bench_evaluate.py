"""Wall time per image of `da2k evaluate`, split into decode/resize, forward and scoring.

A DA-2K-style benchmark is built from tests/fixtures/demo01.jpg (2048 x 1362, a typical DA-2K
size): `--images` copies, one in three stored rotated under an EXIF orientation tag, two pairs
per image as in DA-2K. The model gets deterministic weights (da2k.models.parity) unless
`--weights` is given. Two measurements in one run:

* split: each stage timed on its own, image after image (validation's decode+hash included);
* pipeline: `da2k.evaluate.evaluate` as the command runs it (decode/resize in worker threads
  overlapping the forward, fresh cache), whose wall time minus forward time is what the user
  waits for beyond the network.

    python benchmarks/bench_evaluate.py --model vits --images 6
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


def build_bench(root: Path, n_images: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    source = Image.open(FIXTURE)
    annotations = {}
    for i in range(n_images):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vits")
    parser.add_argument("--weights", help="checkpoint (default: deterministic weights)")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--input-size", type=int, default=518)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = args.weights
        if weights is None:
            model = build_model(args.model)
            model.load_state_dict(deterministic_state_dict(model))
            weights = tmp / f"{args.model}.pth"
            torch.save(model.state_dict(), weights)
        bench = load_benchmark(build_bench(tmp / "bench", args.images))
        predictor = make_predictor(
            args.model,
            PredictorOptions(
                weights=str(weights), input_size=args.input_size, device=args.device, precision=args.precision
            ),
        )
        variant = predictor.variant

        t = time.perf_counter()
        report = validate(bench)
        validate_s = time.perf_counter() - t
        assert report.ok, report.problems
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
        total = sum(per.values())
        flags = sorted({"avx2", "avx512f", "avx512_bf16", "amx_bf16"} & cpu_flags())
        print(
            f"{args.model} at {args.input_size}, {n} images of {Image.open(FIXTURE).size[0]}x"
            f"{Image.open(FIXTURE).size[1]}, {torch.get_num_threads()} threads, device {args.device}, "
            f"{predictor.settings['precision']}, CPU flags: {' '.join(flags) or 'none'}"
        )
        print("split (stages one after another), seconds per image:")
        for name in ("decode", "resize", "forward", "score"):
            label = "decode (+validation)" if name == "decode" else name
            print(f"  {label:<22} {per[name]:8.4f}  {100 * per[name] / total:5.1f} %")
        print(f"  {'total':<22} {total:8.4f}   non-forward {100 * (total - per['forward']) / total:.1f} %")

        outcome = evaluate(bench, predictor, tmp / "results", cache_dir=tmp / "cache", progress=False)
        wall = outcome.result["wall_time_s"]
        forward = outcome.timings["forward_s"]
        print("pipeline (da2k evaluate: validation, then decode/resize overlapped with the forward):")
        print(
            f"  wall {wall / n:.4f} s/image, forward {forward / n:.4f} s/image, "
            f"non-forward {100 * (wall - forward) / wall:.1f} % of the wall time"
        )


if __name__ == "__main__":
    main()
