"""Training with a DA-2K-style benchmark in the loop: the benchmark layer builds the evaluator
that `da2k.models.train` calls (it knows no benchmark; the evaluator is passed in)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from da2k.benchmark import load_benchmark, validate
from da2k.errors import Da2kError
from da2k.evaluate import evaluate
from da2k.predictors import PredictorOptions, make_predictor


def benchmark_evaluator(bench: str, variant: str, input_size: int, device: str = "auto") -> Callable[[Path, int], dict]:
    """`evaluate(model_file, step)` scoring a checkpoint on the DA-2K-format benchmark `bench`
    through `da2k.evaluate` (result JSON + pairs CSV per step under `<model_file dir>/eval/`).

    The benchmark is read and validated now, before any training, so a broken one fails at once:
    one with pairs that cannot be scored is refused (every evaluation of the run must score the
    same pairs, and a skip announced at each step helps nobody); warnings are scored as written."""
    benchmark = load_benchmark(bench)
    report = validate(benchmark)
    if report.errors:
        raise Da2kError(
            f"--eval {bench}: {report.skipped_pairs(benchmark.annotations)} pair(s) cannot be scored, the first: "
            f"{report.errors[0]}; fix them before training (`da2k validate {bench}` lists them all)"
        )

    def run(model_file: Path, step: int) -> dict:
        options = PredictorOptions(weights=str(model_file), input_size=input_size, device=device, precision="fp32")
        predictor = make_predictor(variant, options)
        predictor.cacheable = False  # a new checkpoint every time: nothing to reuse
        outcome = evaluate(  # the run folder is the training's own: a rerun replaces its evaluations
            benchmark,
            predictor,
            model_file.parent / "eval",
            name=f"step{step:07d}",
            overwrite=True,
            progress=False,
            workers=1,
            report=report,
        )
        o = outcome.result["overall"]
        return {"da2k_accuracy": round(o["accuracy"], 6), "da2k_pairs": o["n"]}

    return run
