"""Expert models for mining: any predictor spec (the `--model` grammar, options after `;`),
registered once per (spec, checkpoint, settings) as an expert run in the store."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from da2k.errors import Da2kError
from da2k.models import ModelError
from da2k.models.errors import WeightsUnavailable
from da2k.models.weights import WEIGHTS_DIR_ENV
from da2k.predictors import Predictor, make_predictor, parse_spec, takes_option
from da2k.store import Store
from da2k.store.ops import expert_run_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Expert:
    """A predictor and its expert-run id in the store."""

    run_id: int
    predictor: Predictor
    spec: str
    """The spec as given (precomputed folders made absolute): the expert's name in reports."""


def load_experts(
    store: Store, specs: Sequence[str], *, device: str = "auto", precision: str = "auto", compile: bool = False
) -> list[Expert]:
    """Build each expert predictor and register its expert run (spec, checkpoint, settings);
    `compile` applies to the experts that are our networks, the others run as they are."""
    if len(specs) < 2:
        raise Da2kError("mining needs at least two experts (DA-2K used four): repeat --expert SPEC")
    if len(specs) < 4:
        log.warning("%d experts: DA-2K used four; fewer experts agree more often by chance", len(specs))
    experts, problems = [], []
    for text in specs:
        spec, options = parse_spec(text)
        if spec.startswith("precomputed:"):  # the folder, not just its name, tells maps apart
            spec = "precomputed:" + str(Path(spec.partition(":")[2]).expanduser().resolve())
        try:
            if compile and takes_option(spec, "compile"):
                options = {"compile": True, **options}
            predictor = make_predictor(spec, device=device, precision=precision, **options)
        except WeightsUnavailable as exc:  # mine has no --weights: name the spec option instead
            advice = f"download it and add ;weights=PATH to the expert ('{text};weights=PATH') or put it in ${WEIGHTS_DIR_ENV}"
            problems.append(f"expert {text}: {exc.with_advice(advice)}")
            continue
        except (Da2kError, ModelError) as exc:  # keep going: report every missing expert at once
            problems.append(f"expert {text}: {exc}")
            continue
        settings = {"predictor": predictor.id, "input_size": predictor.input_size, **(predictor.settings or {})}
        settings.update({k: v for k, v in options.items() if k not in ("weights", "compile")})
        run_id = expert_run_id(store, spec, predictor.checkpoint_sha256, settings, predictor.kind)
        experts.append(Expert(run_id, predictor, spec))
    if problems:
        raise Da2kError("\n".join(problems))
    if len({e.run_id for e in experts}) != len(experts):
        raise Da2kError("the same expert was given twice: each --expert must differ")
    return experts
