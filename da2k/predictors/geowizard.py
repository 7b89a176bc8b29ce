"""`geowizard:REPO`: GeoWizard (fuxiao0719/GeoWizard), V1 model, computed as its
`geowizard/models/geowizard_pipeline.py` with `geowizard/run_infer.py`'s settings
(pip install 'da2k[geowizard]').

Components from the repo (hub id or local folder laid out like `lemonaddie/Geowizard`): `unet`
(diffusers `UNet2DConditionModel`, strict) with the joint depth–normal self-attention on every
`attn1`, `vae`, `image_encoder` (CLIP vision with projection), `feature_extractor`, `scheduler`
(DDIM). Per image: resize so the longer edge is `input_size` (768; PIL bicubic), RGB to [-1, 1],
image latent = VAE mean × 0.18215, CLIP image embedding of the image resized to the encoder's crop
(bicubic, antialiased), class labels = sin/cos of the geometry one-hot ⊕ sin/cos of the domain
one-hot; per ensemble member one `randn` of the latent shape (repeated for the depth and normal
halves) and DDIM over `steps`; decode the depth half, channel mean, clip to [-1, 1], to [0, 1];
scale/shift-aligned median ensemble; min–max; resized back to the image (PIL bicubic), clipped to
[0, 1]. Output: affine-invariant depth (larger = farther).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from da2k.errors import Da2kError
from da2k.predictors.base import (
    ImageLoader,
    Prediction,
    Predictor,
    folder_weights_sha256,
    from_pretrained,
    hub_source,
)
from da2k.predictors.diffusion import cpu_generator, load_strict, require, resize_map, rgb_array

DEFAULT_REPO = "lemonaddie/Geowizard"
DOMAINS = ("indoor", "outdoor", "object")
LATENT_SCALE = 0.18215


def processing_size(width: int, height: int, max_edge: int) -> tuple[int, int]:
    """(w, h) of the official `resize_max_res`: the longer edge scaled to `max_edge`, truncated."""
    factor = min(max_edge / width, max_edge / height)
    return int(width * factor), int(height * factor)


def class_labels(domain: str, dtype: Any, device: Any) -> Any:
    """(2, 10): [depth, normal] rows of sin/cos(geometry one-hot) ⊕ sin/cos(domain one-hot)."""
    import torch

    geometry = torch.tensor([[0.0, 1.0], [1.0, 0.0]], device=device, dtype=dtype)
    onehot = [0.0, 0.0, 0.0]
    onehot[DOMAINS.index(domain)] = 1.0
    dom = torch.tensor([onehot], device=device, dtype=dtype).repeat(2, 1)
    return torch.cat(
        [torch.cat([torch.sin(geometry), torch.cos(geometry)], -1), torch.cat([torch.sin(dom), torch.cos(dom)], -1)],
        -1,
    )


class GeoWizardPredictor(Predictor):
    """GeoWizard V1 depth; `settings` record steps, ensemble, seed, domain, resolution, precision."""

    family = "geowizard"
    kind = "depth"

    def __init__(
        self,
        repo: str = DEFAULT_REPO,
        *,
        domain: str | None = None,
        steps: int | None = None,
        ensemble_size: int | None = None,
        seed: int = 0,
        input_size: int | None = None,
        device: str = "auto",
        precision: str = "auto",
    ) -> None:
        super().__init__()
        require("geowizard", "geowizard:", "diffusers", "transformers", "scipy")
        import torch

        from da2k.models import resolve_precision, select_device

        self.domain = domain or "indoor"
        if self.domain not in DOMAINS:
            raise Da2kError(f"geowizard: domain must be one of {', '.join(DOMAINS)}, got {domain!r}")
        self.steps, self.ensemble_size, self.seed = steps or 10, ensemble_size or 10, seed
        if self.steps < 1 or self.ensemble_size < 1:
            raise Da2kError("geowizard: steps and ensemble_size must be at least 1")
        self.input_size = input_size or 768
        self.repo, self.id = repo, f"geowizard:{repo}"
        self.device = select_device(device)
        self.precision = resolve_precision(precision, self.device, who="geowizard")
        self._torch = torch
        self._load(repo)
        self.settings = {
            "model": "v1 (unet)",
            "steps": self.steps,
            "ensemble_size": self.ensemble_size,
            "seed": seed,
            "domain": self.domain,
            "processing_resolution": self.input_size,
            "precision": self.precision.name,
            "align_corners": False,
        }
        self._sha256 = folder_weights_sha256(repo, None, marker="model_index.json")

    def _load(self, repo: str) -> None:
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        from da2k.predictors.joint_attention import install_joint_attention

        who, flag = "geowizard", "geowizard:DIR (a folder laid out like the hub repo)"
        self.unet = load_strict(UNet2DConditionModel, repo, "unet", who, flag).to(self.device)
        if install_joint_attention(self.unet) == 0:
            raise Da2kError(f"geowizard:{repo}: the UNet has no self-attention to make joint; not a GeoWizard UNet")
        self.vae = load_strict(AutoencoderKL, repo, "vae", who, flag).to(self.device)
        self.image_encoder = load_strict(CLIPVisionModelWithProjection, repo, "image_encoder", who, flag).to(
            self.device
        )
        self.feature_extractor = from_pretrained(
            CLIPImageProcessor.from_pretrained, repo, who, flag, subfolder="feature_extractor"
        )
        self.scheduler = from_pretrained(DDIMScheduler.from_pretrained, repo, who, flag, subfolder="scheduler")

    @property
    def checkpoint_sha256(self) -> str | None:
        return self._sha256

    @property
    def checkpoint_source(self) -> str:
        return hub_source(self.repo, None)

    @property
    def n_params(self) -> int:
        """UNet, VAE and CLIP image encoder."""
        return sum(p.numel() for m in (self.unet, self.vae, self.image_encoder) for p in m.parameters())

    def prepare(self, key: str, load: ImageLoader) -> Any:
        image = load()
        size = processing_size(image.width, image.height, self.input_size)
        resized = image.convert("RGB").resize(size, resample=Image.Resampling.BICUBIC)
        rgb = self._torch.from_numpy(rgb_array(resized) / 255.0 * 2.0 - 1.0).to(self._torch.float32)[None]
        return rgb, (image.width, image.height)

    def forward(self, prepared: Any) -> Prediction:
        rgb, size = prepared
        torch = self._torch
        with torch.inference_mode(), self.precision.autocast(self.device):
            rgb = rgb.to(self.device)
            generator = cpu_generator(self.seed)
            # The official pipeline iterates a DataLoader over the ensemble copies, which draws its
            # base seed (one int64) from the global generator before the first member's noise.
            torch.empty((), dtype=torch.int64).random_(generator=generator)
            latent = self.vae.encode(rgb).latent_dist.mean * LATENT_SCALE
            embedding = self._embedding(rgb).repeat(2, 1, 1)
            members = [self._member(latent, embedding, generator) for _ in range(self.ensemble_size)]
        preds = torch.cat(members, dim=0).float().squeeze()  # (E, h, w), or (h, w) for one member
        if self.ensemble_size > 1:
            from da2k.predictors.depth_ensemble import ensemble_depths

            preds = ensemble_depths(preds)
        depth = (preds - preds.min()) / (preds.max() - preds.min())
        values = resize_map(depth.cpu().numpy().astype(np.float32), size, Image.Resampling.BICUBIC)
        return Prediction(values.clip(0, 1), self.kind, align_corners=False)

    def _embedding(self, rgb: Any) -> Any:
        """(1, 1, dim) CLIP image embedding of the [-1, 1] image, as the official `__encode_img_embed`."""
        import torch.nn.functional as F

        torch = self._torch
        crop = self.feature_extractor.crop_size
        mean = torch.as_tensor(self.feature_extractor.image_mean)[:, None, None].to(self.device)
        std = torch.as_tensor(self.feature_extractor.image_std)[:, None, None].to(self.device)
        x = F.interpolate(
            (rgb + 1) / 2, size=(crop["height"], crop["width"]), mode="bicubic", align_corners=False, antialias=True
        )
        return self.image_encoder((x.float() - mean) / std).image_embeds.unsqueeze(1)

    def _member(self, latent: Any, embedding: Any, generator: Any) -> Any:
        """One ensemble member from the image latent (1, 4, h, w) and the doubled CLIP embedding:
        (1, 1, h', w') depth in [0, 1] (`single_infer` of the official code)."""
        torch = self._torch
        self.scheduler.set_timesteps(self.steps, device=self.device)
        geo = torch.randn(latent.shape, generator=generator, dtype=torch.float32).to(self.device).repeat(2, 1, 1, 1)
        latent = latent.repeat(2, 1, 1, 1)
        labels = class_labels(self.domain, torch.float32, self.device)
        for t in self.scheduler.timesteps:
            noise = self.unet(
                torch.cat([latent, geo], dim=1), t.repeat(2), encoder_hidden_states=embedding, class_labels=labels
            ).sample
            geo = self.scheduler.step(noise, t, geo).prev_sample
        decoded = self.vae.decoder(self.vae.post_quant_conv(geo[0][None] / LATENT_SCALE))
        depth = torch.clip(decoded.mean(dim=1, keepdim=True), -1.0, 1.0)
        return (depth + 1.0) / 2.0
