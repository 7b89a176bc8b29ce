"""`hf:REPO`: a transformers depth-estimation model (pip install 'da2k[hf]')."""

from __future__ import annotations

from typing import Any

from da2k.errors import Da2kError
from da2k.predictors.base import (
    ImageLoader,
    Prediction,
    Predictor,
    as_map,
    check_kind,
    folder_weights_sha256,
    from_pretrained,
    hub_source,
)

# Output kind of transformers depth-estimation families (model_type -> kind). Relative models
# (DPT, Depth Anything) predict inverse depth; the metric ones predict metres.
HF_KINDS = {
    "depth_anything": "disparity",
    "dpt": "disparity",
    "glpn": "depth",
    "zoedepth": "depth",
    "depth_pro": "depth",
    "prompt_depth_anything": "depth",
}
# Families whose processor only resizes (no padding/cropping): the raw output covers the whole
# image and can be sampled at network resolution; others go through post_process.
_HF_LOWRES = {"depth_anything", "dpt", "glpn"}


class HFPredictor(Predictor):
    """A `transformers` depth-estimation model (hub id or local folder)."""

    family = "transformers"

    def __init__(
        self,
        repo: str,
        kind: str | None = None,
        input_size: int | None = None,
        device: str = "auto",
        precision: str = "auto",
    ) -> None:
        super().__init__()
        try:
            import torch
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation
        except ImportError:
            raise Da2kError("hf: models need transformers: pip install 'da2k[hf]'") from None
        from da2k.models import resolve_precision, select_device

        self.repo = repo
        self.id = f"hf:{repo}"
        who, flag = "hf", "hf:DIR (a local model folder)"
        self.processor = from_pretrained(AutoImageProcessor.from_pretrained, repo, who, flag)
        self.model = from_pretrained(AutoModelForDepthEstimation.from_pretrained, repo, who, flag).eval()
        config = self.model.config
        family = config.model_type
        if family == "depth_anything" and getattr(config, "depth_estimation_type", "relative") == "metric":
            declared = "depth"
        else:
            declared = HF_KINDS.get(family)
        if kind is None and declared is None:
            raise Da2kError(f"hf:{repo}: unknown output kind for model type {family!r}; pass --kind depth|disparity")
        self.kind = check_kind(kind or declared, "--kind")
        if input_size is not None and hasattr(self.processor, "size"):
            self.processor.size = {"height": input_size, "width": input_size}
        size = getattr(self.processor, "size", None) or {}
        self.input_size = input_size or size.get("height") or size.get("shortest_edge")
        self.lowres = family in _HF_LOWRES
        self.device = select_device(device)
        self.model.to(self.device)
        self.precision = resolve_precision(precision, self.device)
        self._torch = torch
        self.settings = {
            "model_type": family,
            "declared_kind": declared,
            "precision": self.precision.name,
            "align_corners": False,
        }
        revision = getattr(config, "_commit_hash", None)
        self._sha256 = folder_weights_sha256(repo, revision)
        self._source = hub_source(repo, revision)

    @property
    def checkpoint_sha256(self) -> str | None:
        return self._sha256

    @property
    def checkpoint_source(self) -> str:
        return self._source

    def prepare(self, key: str, load: ImageLoader) -> Any:
        image = load()
        return self.processor(images=image, return_tensors="pt"), (image.height, image.width)

    def forward(self, prepared: Any) -> Prediction:
        inputs, size = prepared
        with self._torch.inference_mode(), self.precision.autocast(self.device):
            outputs = self.model(**{k: v.to(self.device) for k, v in inputs.items()})
            if self.lowres:
                values = outputs.predicted_depth[0].float()
            else:
                post = self.processor.post_process_depth_estimation(outputs, target_sizes=[size])
                values = post[0]["predicted_depth"].float()
        return Prediction(as_map(values, self.id), self.kind, align_corners=False)
