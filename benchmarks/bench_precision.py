"""How often does running our network in bf16 (and fp16 on CUDA) change the order of a pair of
points compared with fp32? This decides whether `--precision auto` may pick a reduced precision
when scoring a benchmark: it may only if at least 99.9 % of pairs keep their order.

For each model, the same inputs go through `infer_network` at fp32 and at each reduced precision
(bf16 on the CPU; fp16 and bf16 on CUDA); both network-resolution maps are read at the pair
points exactly as scoring reads them (`da2k.scoring.sample_bilinear`, the variant's
`align_corners`, at the original image size), and a pair *agrees* when the sign of d1 - d2 is
the same at both precisions (a tie agrees only with a tie).

Models:
* `--models` (default vits vitl) at `--input-size` (default: the variant's, 518), with the
  deterministic parity weights of `da2k.models.parity` (`--weights parity`, the default), the
  official checkpoints (`--weights hub`: `$DA2K_WEIGHTS_DIR`, then the Hugging Face cache or
  download) or the official files in a folder (`--weights DIR`);
* a small trained `vit-tiny` at `--tiny-input-size` (56): trained here in a temporary folder with
  the README's tiny-demo teacher recipe (about 15 s on 2 cores), or loaded from `--tiny-weights`.

Pairs:
* `photos`: `--pairs-per-image` random point pairs (seeded, uniform over the image) on each photo
  of `--images` (files or folders; default: the project's test photos); the `hard` columns
  restrict them to the pairs whose fp32 values differ by less than `--hard-gap` (relative);
* `synthetic`: every pair of a seeded DA-2K-style benchmark from `da2k.synthetic`
  (`--synthetic-images` x `--synthetic-pairs`, labelled: accuracy is reported at both
  precisions). The tiny model scores all of it; the `--models`, for which each image costs a
  full 518-pixel forward, its first `--parity-synthetic-images`.

Per model, pair set and precision the table gives the number of pairs, the agreement, the
flipped pairs, the largest relative map difference (max |low - fp32| / max |fp32| over the
images), and among the flipped pairs the largest fp32 gap, relative to the pair's values
(|d1 - d2| / max(|d1|, |d2|)) and to the image's map (|d1 - d2| / max |fp32|): small when only
near-ties flip. The verdict per precision takes, for each model, the agreement
over all its pairs, and the minimum over models.

    python benchmarks/bench_precision.py --images ~/photos
    python benchmarks/bench_precision.py --images ~/photos --models vits --pairs-per-image 2000
    python benchmarks/bench_precision.py --weights ~/checkpoints --models vits vitb vitl
    python benchmarks/bench_precision.py --tiny-weights runs/teacher/model.pt --device cuda
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from da2k.benchmark import load_benchmark
from da2k.models import (
    ModelError,
    build_model,
    cpu_flags,
    infer_network,
    load_image,
    load_pretrained,
    select_device,
    to_network_input,
)
from da2k.models.parity import deterministic_state_dict
from da2k.scoring import sample_bilinear, to_disparity
from da2k.synthetic import make_benchmark

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
DEFAULT_IMAGES = [FIXTURES / "demo01.jpg", FIXTURES / "photos"]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
THRESHOLD = 0.999  # agreement a precision needs before `--precision auto` may use it for scoring

# The README's tiny demo (teacher stage): vit-tiny trained on 128 procedural scenes.
TINY_TRAIN_IMAGES = 128
TINY_RECIPE = ("--encoder", "vit-tiny", "--init", "random", "--size", "56", "--iters", "60")
TINY_RECIPE += ("--batch-size", "8", "--lr", "1e-4", "--workers", "0")


@dataclass(frozen=True)
class Sample:
    """One image and its pairs: `points` (n, 2, 2) as (pair, point, row/col) in the EXIF-applied
    image; for labelled samples the first point of each pair is the closer one."""

    name: str
    image: Image.Image
    points: np.ndarray


@dataclass(frozen=True)
class PairSet:
    """Named samples; `labelled`: the first point of every pair is the closer one."""

    name: str
    samples: list[Sample]
    labelled: bool

    @property
    def n_pairs(self) -> int:
        return sum(len(s.points) for s in self.samples)


@dataclass(frozen=True)
class Case:
    """A model measured at one input size on some pair sets."""

    label: str
    model: torch.nn.Module
    input_size: int
    sets: list[PairSet]


@dataclass(frozen=True)
class Measured:
    """One sample at every precision: disparity-like `values` (n, 2) at its pairs per precision,
    max |fp32 map| (`scale`) and max |low - fp32| / `scale` per reduced precision (`map_rel`)."""

    values: dict[str, np.ndarray]
    scale: float
    map_rel: dict[str, float]


@dataclass
class Collected:
    """The `Measured` samples of one pair set, concatenated: values (n, 2) per precision, each
    pair's image scale (n,), and the largest relative map difference per reduced precision."""

    values: dict[str, list[np.ndarray]] = field(default_factory=dict)
    scales: list[np.ndarray] = field(default_factory=list)
    map_rel: dict[str, float] = field(default_factory=dict)

    def add(self, measured: Measured) -> None:
        for p, v in measured.values.items():
            self.values.setdefault(p, []).append(v)
        self.scales.append(np.full(len(measured.values["fp32"]), measured.scale))
        for p, r in measured.map_rel.items():
            self.map_rel[p] = max(self.map_rel.get(p, 0.0), r)

    def stacked(self, precision: str) -> np.ndarray:
        return np.concatenate(self.values[precision]) if self.values.get(precision) else np.zeros((0, 2))

    def pair_scales(self) -> np.ndarray:
        return np.concatenate(self.scales) if self.scales else np.zeros(0)


@dataclass(frozen=True)
class Row:
    """One line of the table: `model` on `pairs` at `precision` against fp32."""

    model: str
    pairs: str
    precision: str
    n: int
    agree: int
    ties: int
    hard_n: int
    hard_agree: int
    map_rel: float
    max_flip_gap: float | None
    max_flip_map_gap: float | None
    acc_fp32: float | None
    acc_low: float | None

    @property
    def agreement(self) -> float:
        return self.agree / self.n if self.n else 1.0

    @property
    def flipped(self) -> int:
        return self.n - self.agree


# --------------------------------------------------------------------------------------------
# Pairs


def image_files(paths: list[Path]) -> list[Path]:
    """The image files among `paths` (files as given, folders' image files sorted, not recursive)."""
    out: list[Path] = []
    for path in paths:
        path = path.expanduser()
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            out.append(path)
    return out


def random_pairs(rng: np.random.Generator, height: int, width: int, n: int) -> np.ndarray:
    """(n, 2, 2) integer pixel pairs drawn uniformly over a height x width image, the two points of
    a pair distinct."""
    points = np.stack([rng.integers(0, height, size=(n, 2)), rng.integers(0, width, size=(n, 2))], axis=-1)
    same = (points[:, 0] == points[:, 1]).all(axis=1)
    points[same, 1, 1] = (points[same, 0, 1] + 1) % width
    return points.astype(np.float64)


def photo_pairs(paths: list[Path], per_image: int, seed: int) -> PairSet:
    """`per_image` random pairs on each photo (the generator seeded by `seed` and the photo's index)."""
    samples = []
    for i, path in enumerate(paths):
        image = load_image(path)
        rng = np.random.default_rng([seed, i])
        samples.append(Sample(path.name, image, random_pairs(rng, image.height, image.width, per_image)))
    return PairSet("photos", samples, labelled=False)


def synthetic_pairs(root: Path, n_images: int, per_image: int, seed: int) -> PairSet:
    """Every pair of a seeded synthetic DA-2K-style benchmark written to `root`, closer point first."""
    make_benchmark(root, n_images=n_images, pairs_per_image=per_image, seed=seed)
    bench = load_benchmark(root)
    samples = []
    for key in bench.keys():
        points = np.array([(p.closer, p.other) for p in bench.pairs(key)], dtype=np.float64)
        samples.append(Sample(key, bench.load_image(key), points))
    return PairSet("synthetic", samples, labelled=True)


def first_images(pairs: PairSet, n_images: int) -> PairSet:
    """The first `n_images` samples of `pairs`."""
    return PairSet(pairs.name, pairs.samples[:n_images], pairs.labelled)


# --------------------------------------------------------------------------------------------
# Models


def network(name: str, weights: str, device: torch.device) -> tuple[str, torch.nn.Module]:
    """`name` on `device` with the deterministic parity weights (`weights="parity"`), the
    official checkpoint (`"hub"`) or the official file in the folder `weights`; and its label
    (`NAME-parity`, or just `NAME` for real weights)."""
    if weights == "parity":
        model = build_model(name)
        model.load_state_dict(deterministic_state_dict(model), strict=True)
        return f"{name}-parity", model.to(device)
    model = load_pretrained(name, None if weights == "hub" else weights)
    print(f"{name}: weights {model.checkpoint}", flush=True)
    return name, model.to(device)


def train_tiny(workdir: Path, seed: int, device: torch.device) -> Path:
    """Train the README's tiny-demo teacher in `workdir` (through the `da2k` CLI); its model.pt."""
    data = workdir / "train"
    make_benchmark(data, n_images=TINY_TRAIN_IMAGES, pairs_per_image=1, seed=seed)
    out = workdir / "teacher"
    command = [sys.executable, "-c", "from da2k.cli import main; main()", "train", "teacher"]
    command += ["--data", f"rgbd:{data}", "--out", str(out), "--seed", str(seed), "--device", device.type]
    started = time.perf_counter()
    done = subprocess.run([*command, *TINY_RECIPE], cwd=workdir, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"training the tiny model failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    print(f"trained the tiny vit-tiny teacher in {time.perf_counter() - started:.1f} s", flush=True)
    return out / "model.pt"


def reduced_precisions(device: torch.device) -> list[str]:
    """The precisions compared with fp32 on `device`: fp16 and bf16 on CUDA, bf16 elsewhere."""
    return ["fp16", "bf16"] if device.type == "cuda" else ["bf16"]


# --------------------------------------------------------------------------------------------
# Measuring


def ratio(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """num / den elementwise, 0 where den is 0."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def measure_sample(case: Case, sample: Sample, precisions: list[str], seconds: dict[str, float]) -> Measured:
    """The sample through the network at fp32 and each reduced precision, read at its pairs;
    forward seconds are added to `seconds`."""
    variant = case.model.variant
    x = to_network_input(sample.image, case.input_size, variant.mean, variant.std)
    size = (sample.image.height, sample.image.width)
    maps, values = {}, {}
    for precision in ["fp32", *precisions]:
        started = time.perf_counter()
        maps[precision] = infer_network(case.model, x, precision)[0].cpu().numpy()
        seconds[precision] = seconds.get(precision, 0.0) + time.perf_counter() - started
        sampled = sample_bilinear(maps[precision], sample.points.reshape(-1, 2), size, variant.align_corners)
        values[precision] = to_disparity(sampled, variant.kind).reshape(-1, 2)
    scale = float(np.abs(maps["fp32"]).max())
    map_rel = {p: float(ratio(np.abs(maps[p] - maps["fp32"]).max(), scale)) for p in precisions}
    return Measured(values, scale, map_rel)


def relative_gap(values: np.ndarray) -> np.ndarray:
    """|d1 - d2| / max(|d1|, |d2|) per pair of (n, 2) values (0 where both are 0)."""
    return ratio(np.abs(values[:, 0] - values[:, 1]), np.abs(values).max(axis=1))


def compare(model: str, pairs: PairSet, precision: str, collected: Collected, hard_gap: float) -> Row:
    """The table row for `precision` against fp32 on the values `collected` for `pairs`."""
    ref, low = collected.stacked("fp32"), collected.stacked(precision)
    same = np.sign(ref[:, 0] - ref[:, 1]) == np.sign(low[:, 0] - low[:, 1])
    gap = relative_gap(ref)
    map_gap = ratio(np.abs(ref[:, 0] - ref[:, 1]), collected.pair_scales())
    hard = gap < hard_gap
    flipped = ~same

    def accuracy(values: np.ndarray) -> float | None:
        return float(np.mean(values[:, 0] > values[:, 1])) if pairs.labelled and len(values) else None

    return Row(
        model=model,
        pairs=pairs.name,
        precision=precision,
        n=len(same),
        agree=int(same.sum()),
        ties=int((ref[:, 0] == ref[:, 1]).sum()),
        hard_n=int(hard.sum()),
        hard_agree=int(same[hard].sum()),
        map_rel=collected.map_rel.get(precision, 0.0),
        max_flip_gap=float(gap[flipped].max()) if flipped.any() else None,
        max_flip_map_gap=float(map_gap[flipped].max()) if flipped.any() else None,
        acc_fp32=accuracy(ref),
        acc_low=accuracy(low),
    )


def measure_case(case: Case, precisions: list[str], hard_gap: float) -> tuple[list[Row], dict[str, float]]:
    """Rows for every pair set and reduced precision of `case`, and forward seconds per precision."""
    rows, seconds = [], {}
    for pairs in case.sets:
        collected = Collected()
        for sample in tqdm(pairs.samples, desc=f"{case.label} {pairs.name}", unit="img", file=sys.stderr):
            collected.add(measure_sample(case, sample, precisions, seconds))
        rows += [compare(case.label, pairs, p, collected, hard_gap) for p in precisions]
    return rows, seconds


# --------------------------------------------------------------------------------------------
# Reporting


def percent(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}"


def sci(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"


def machine_lines(device: torch.device) -> list[str]:
    """What ran: torch, threads, device and the CPU's bf16 flags."""
    flags = cpu_flags()
    lines = [
        f"python {platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}",
        "cpu flags: " + ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in ("avx512_bf16", "amx_bf16")),
        f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
    ]
    return lines


LEGEND = (
    "ties: pairs tied at fp32; hard: pairs whose fp32 |d1 - d2| / max(|d1|, |d2|) < {hard_gap:g}\n"
    "map rel: max |low - fp32| / max |fp32 map|, largest over the images\n"
    "flip gap, flip map gap: largest fp32 |d1 - d2| of a flipped pair, / max(|d1|, |d2|) and / max |fp32 map|"
)


def table(rows: list[Row], hard_gap: float) -> str:
    """The results as a fixed-width table, under its legend."""
    header = (
        f"{'model':<14} {'pairs':<10} {'prec':<5} {'n':>8} {'agree %':>9} {'flipped':>7} {'ties':>6} "
        f"{'hard n':>7} {'hard agr %':>10} {'map rel':>9} {'flip gap':>9} {'flip map gap':>12} {'acc fp32':>8} {'acc low':>8}"
    )
    lines = [LEGEND.format(hard_gap=hard_gap), header, "-" * len(header)]
    for r in rows:
        hard = percent(r.hard_agree / r.hard_n) if r.hard_n else "-"
        lines.append(
            f"{r.model:<14} {r.pairs:<10} {r.precision:<5} {r.n:>8} {percent(r.agreement):>9} {r.flipped:>7} "
            f"{r.ties:>6} {r.hard_n:>7} {hard:>10} {r.map_rel:>9.2e} {sci(r.max_flip_gap):>9} {sci(r.max_flip_map_gap):>12} "
            f"{percent(r.acc_fp32, 2):>8} {percent(r.acc_low, 2):>8}"
        )
    return "\n".join(lines)


def verdicts(rows: list[Row], precisions: list[str]) -> list[str]:
    """One line per precision: the lowest per-model agreement (all of a model's pairs) vs THRESHOLD."""
    lines = []
    for precision in precisions:
        per_model: dict[str, tuple[int, int]] = {}
        for r in rows:
            if r.precision == precision:
                n, agree = per_model.get(r.model, (0, 0))
                per_model[r.model] = (n + r.n, agree + r.agree)
        worst = min(per_model, key=lambda m: per_model[m][1] / per_model[m][0])
        n, agree = per_model[worst]
        ok = agree / n >= THRESHOLD
        lines.append(
            f"{precision}: agreement {100 * agree / n:.3f} % over {n} pairs (min over models: {worst}): "
            f"auto {'may' if ok else 'must not'} pick {precision} for scoring (threshold {100 * THRESHOLD:.1f} %)"
        )
    return lines


# --------------------------------------------------------------------------------------------


def cases(
    args: argparse.Namespace, device: torch.device, photos: PairSet, synthetic: PairSet, work: Path
) -> Iterator[Case]:
    """The cases to measure, each model built only when its turn comes."""
    for name in args.models:
        label, model = network(name, args.weights, device)
        sets = [photos, first_images(synthetic, args.parity_synthetic_images)]
        yield Case(label, model, args.input_size or model.variant.input_size, sets)
    if not args.no_tiny:
        weights = args.tiny_weights or train_tiny(work / "tiny", args.seed + 1, device)
        tiny = build_model("vit-tiny", weights=weights).to(device)
        yield Case("vit-tiny", tiny, args.tiny_input_size, [photos, synthetic])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=["vits", "vitl"], help="registry models (default: vits vitl)")
    p.add_argument(
        "--weights",
        default="parity",
        help="the models' weights: parity (default), hub (official checkpoints), or a folder of official files",
    )
    p.add_argument(
        "--images", nargs="+", type=Path, default=DEFAULT_IMAGES, help="photo files or folders (default: test photos)"
    )
    p.add_argument("--pairs-per-image", type=int, default=5000, help="random pairs per photo (default: 5000)")
    p.add_argument("--hard-gap", type=float, default=0.01, help="'hard' pairs: fp32 relative gap below this")
    p.add_argument("--synthetic-images", type=int, default=200, help="synthetic benchmark images (default: 200)")
    p.add_argument("--synthetic-pairs", type=int, default=20, help="pairs per synthetic image (default: 20)")
    p.add_argument(
        "--parity-synthetic-images", type=int, default=10, help="synthetic images for --models (default: 10)"
    )
    p.add_argument("--input-size", type=int, default=None, help="--models' input size (default: the variant's)")
    p.add_argument("--tiny-weights", type=Path, default=None, help="trained vit-tiny model.pt (default: train one)")
    p.add_argument("--tiny-input-size", type=int, default=56, help="vit-tiny input size (default: 56, as trained)")
    p.add_argument("--no-tiny", action="store_true", help="leave out the trained vit-tiny")
    p.add_argument("--seed", type=int, default=0, help="seed of the pairs, the benchmark and the tiny training")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    try:
        run(parse_args(argv))
    except ModelError as e:  # weights missing or offline: one line
        sys.exit(f"error: {e}")


def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    device = select_device(args.device)
    precisions = reduced_precisions(device)
    print("\n".join(machine_lines(device)), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_precision_") as tmp:
        work = Path(tmp)
        files = image_files(args.images)
        if not files:
            sys.exit(f"no images in {' '.join(map(str, args.images))}")
        photos = photo_pairs(files, args.pairs_per_image, args.seed)
        synthetic = synthetic_pairs(work / "synthetic", args.synthetic_images, args.synthetic_pairs, args.seed)
        print(
            f"pairs: {photos.n_pairs} on {len(photos.samples)} photos, {synthetic.n_pairs} on "
            f"{len(synthetic.samples)} synthetic images",
            flush=True,
        )
        rows = []
        for case in cases(args, device, photos, synthetic, work):
            case_rows, seconds = measure_case(case, precisions, args.hard_gap)
            rows += case_rows
            n_images = sum(len(s.samples) for s in case.sets)
            timing = ", ".join(f"{p} {t / n_images:.2f} s/img" for p, t in seconds.items())
            print(f"{case.label} at {case.input_size}: {timing}", flush=True)
    print()
    print(table(rows, args.hard_gap))
    print()
    print("\n".join(verdicts(rows, precisions)))
    print(f"time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
