"""Our Depth Anything V1/V2 networks (`da2k.models`) as a predictor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from da2k.predictors.base import ImageLoader, Prediction, Predictor, check_kind


class DepthAnythingPredictor(Predictor):
    """Our models (`da2k.models`): official preprocessing, network-resolution output, the
    variant's align_corners convention (V2 True, V1 False) for mapping back."""

    family = "depth-anything"

    def __init__(
        self,
        name: str,
        weights: str | Path | None = None,
        input_size: int | None = None,
        device: str = "auto",
        precision: str = "auto",
        *,
        kind: str | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        from da2k.models import (
            checkpoint_source,
            file_sha256,
            get_variant,
            load_pretrained,
            resolve_precision,
            select_device,
        )

        self.variant = get_variant(name)  # unknown names list the valid ones
        self.id = name
        self.kind = check_kind(kind, "--kind") if kind is not None else self.variant.kind
        self.input_size = input_size or self.variant.input_size
        self.model = load_pretrained(name, weights)
        self._sha256 = file_sha256(self.model.checkpoint)
        self._source = checkpoint_source(self.variant, self.model.checkpoint)
        self.device = select_device(device)
        self.model.to(self.device)
        self.precision = resolve_precision(precision, self.device)
        self.compile = compile
        # Not a setting: compiled and eager outputs agree to ~1e-6 (the run's latency block says it).
        self.settings = {"precision": self.precision.name, "align_corners": self.variant.align_corners}

    @property
    def checkpoint_sha256(self) -> str:
        return self._sha256

    @property
    def checkpoint_source(self) -> str:
        return self._source

    @property
    def compile_seconds(self) -> float:
        """Seconds spent compiling so far (first image of each network input size)."""
        from da2k.models.prepared import compile_seconds

        return compile_seconds(self.model)

    def prepare(self, key: str, load: ImageLoader) -> Any:
        from da2k.models import to_network_input

        return to_network_input(load(), self.input_size, self.variant.mean, self.variant.std)

    def forward(self, prepared: Any) -> Prediction:
        from da2k.models import infer_network

        values = infer_network(self.model, prepared, self.precision, compile=self.compile)[0].cpu().numpy()
        return Prediction(values, self.kind, self.variant.align_corners)
