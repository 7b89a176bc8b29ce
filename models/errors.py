"""Errors a user can fix (unknown variant, missing weights, unreadable image)."""

from __future__ import annotations

DEFAULT_WEIGHTS_ADVICE = "download it and pass --weights PATH or put it in $DA2K_WEIGHTS_DIR"


class ModelError(Exception):
    """One-line, actionable problem with a model name, a checkpoint or an input image."""


class WeightsUnavailable(ModelError):
    """A checkpoint that cannot be found (not local, not cached, hub out of reach or no public
    weights). `problem` says what is missing; `advice` how to point at a local copy, phrased for
    the caller: the flag or option its command accepts (`with_advice`)."""

    def __init__(self, problem: str, advice: str = DEFAULT_WEIGHTS_ADVICE) -> None:
        self.problem, self.advice = problem, advice
        super().__init__(f"{problem}; {advice}")

    def with_advice(self, advice: str) -> "WeightsUnavailable":
        return WeightsUnavailable(self.problem, advice)
