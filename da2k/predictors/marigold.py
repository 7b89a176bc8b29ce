"""`marigold:REPO`: diffusers' MarigoldDepthPipeline (pip install 'da2k[marigold]')."""

from __future__ import annotations

from PIL import Image

from da2k.errors import Da2kError
from da2k.predictors.base import Prediction, Predictor, as_map, folder_weights_sha256, from_pretrained, hub_source


class MarigoldPredictor(Predictor):
    """`diffusers.MarigoldDepthPipeline`: affine-invariant depth (near = 0, far = 1), so kind is
    `depth`. Seed, ensemble size and denoising steps are recorded in `settings`."""

    family = "marigold"
    kind = "depth"

    def __init__(
        self,
        repo: str,
        *,
        seed: int = 0,
        ensemble_size: int = 1,
        steps: int | None = None,
        input_size: int | None = None,
        device: str = "auto",
        precision: str = "auto",
    ) -> None:
        super().__init__()
        try:
            import torch
            from diffusers import MarigoldDepthPipeline
        except ImportError:
            raise Da2kError("marigold: models need diffusers: pip install 'da2k[marigold]'") from None
        from da2k.models import resolve_precision, select_device

        self.repo, self.id = repo, f"marigold:{repo}"
        self.device = select_device(device)
        # Weights stay fp32 and bf16/fp16 run as autocast, as for every predictor: the pipeline's
        # preprocessing (antialiased resize) has no bf16 CPU kernel, so bf16 weights cannot run on
        # the CPU, while autocast leaves that resize in fp32.
        self.precision = resolve_precision(precision, self.device, who="marigold")
        pipe = from_pretrained(MarigoldDepthPipeline.from_pretrained, repo, "marigold", "marigold:DIR")
        self.pipe = pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self._torch = torch
        self.seed, self.ensemble_size, self.steps = seed, ensemble_size, steps
        self.input_size = input_size or getattr(self.pipe, "default_processing_resolution", None)
        self.settings = {
            "seed": seed,
            "ensemble_size": ensemble_size,
            "num_inference_steps": steps or getattr(self.pipe, "default_denoising_steps", None),
            "processing_resolution": self.input_size,
            "precision": self.precision.name,
            "align_corners": False,
        }
        self._sha256 = folder_weights_sha256(repo, None, marker="model_index.json")

    @property
    def checkpoint_sha256(self) -> str | None:
        return self._sha256

    @property
    def checkpoint_source(self) -> str:
        return hub_source(self.repo, None)

    @property
    def n_params(self) -> int:
        """Parameters of every network of the pipeline (UNet, VAE, text encoder)."""
        modules = [m for m in self.pipe.components.values() if hasattr(m, "parameters")]
        return sum(p.numel() for m in modules for p in m.parameters())

    def forward(self, prepared: Image.Image) -> Prediction:
        # A fresh generator per image: the same image gets the same noise whatever the order,
        # which keeps resumed runs identical.
        generator = self._torch.Generator(device="cpu").manual_seed(self.seed)
        with self._torch.inference_mode(), self.precision.autocast(self.device):
            out = self.pipe(
                prepared,
                num_inference_steps=self.steps,
                ensemble_size=self.ensemble_size,
                processing_resolution=self.input_size,
                match_input_resolution=False,
                generator=generator,
                output_type="pt",
            )
        return Prediction(as_map(out.prediction, self.id), "depth", align_corners=False)
