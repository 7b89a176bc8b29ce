"""`depthfm:CKPT`: DepthFM (CompVis/depth-fm, MIT), computed as its `depthfm/dfm.py` and
`inference.py` do (pip install 'da2k[depthfm]').

The flow-matching UNet is the original Stable Diffusion code base's UNet, configured from the
checkpoint's own `ldm_hparams` and run as `diffusers.UNet2DConditionModel` (keys converted,
strict). Procedure, per image: resize so both sides are multiples of 64 (PIL bilinear; the longer
side kept, or `input_size`), RGB to [-1, 1], the SD VAE latent (distribution mode × 0.18215),
optional noising at the checkpoint's `noising_step` (seeded), Euler steps from t = 0 to 1 of
v(x ⊕ image latent, t, empty-text context), decode, channel mean, mean over the ensemble, `exp`,
min–max to [0, 1], resized back to the image (PIL bilinear, in float: the official script
quantises to 8 bits only to save a PNG).

Self-attention is plain softmax(q kᵀ/√d) v, as the official code computes with xformers installed
(its requirements); without xformers it falls back to a rescaled self-attention, a different
function that this predictor does not reproduce.

Output kind: depth-like (larger = farther). The code trains and evaluates the map as affine-
invariant depth (names, `exp` of a log-depth-like latent, min–max like Marigold's depth), and
the DepthFM ComfyUI wrappers invert it to show near as white; see the README.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from da2k.errors import Da2kError
from da2k.predictors.base import ImageLoader, Prediction, Predictor, folder_weights_sha256
from da2k.predictors.diffusion import cpu_generator, load_strict, require, resize_map, rgb_array

DEFAULT_VAE = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # the SD 1.5 VAE the official code loads
LATENT_SCALE = 0.18215


def processing_size(width: int, height: int, input_size: int | None) -> tuple[int, int]:
    """(w, h) the official `resize_max_res` gives: scale the longer side to `input_size` (None: kept),
    truncate, round each side to a multiple of 64 (Python's round: halves to even). A side that
    would round to 0, where the official script fails, becomes 64."""
    edge = max(width, height) if input_size is None or input_size < 0 else input_size
    factor = min(edge / width, edge / height)
    w, h = int(width * factor), int(height * factor)
    return max(64, round(w / 64) * 64), max(64, round(h / 64) * 64)


def euler_grid(steps: int):
    """The time grid of torchdiffeq's fixed-step Euler on [0, 1] with step 1/steps (float32)."""
    import torch

    t = torch.linspace(0, 1, 2, dtype=torch.float32)
    step = 1.0 / steps
    n = torch.ceil((t[-1] - t[0]) / step + 1).item()
    grid = torch.arange(0, n, dtype=t.dtype) * step + t[0]
    grid[-1] = t[-1]
    return grid


def noising(latent, noise, step: int):
    """`q_sample` of the official code: the cosine-schedule marginal at `step` of 1000."""
    import torch

    t = step / 1000
    log_snr = -2 * np.log(np.tan((np.pi * t) / 2) + 0.00001)
    alpha = torch.tensor(1 / (1 + np.exp(-log_snr))).to(latent.device).to(latent.dtype)
    return torch.sqrt(alpha) * latent + torch.sqrt(1 - alpha) * noise


def _vae_source(vae: str | None) -> tuple[str, str | None]:
    """(repo or folder, subfolder) of the VAE: a folder holding config.json, a pipeline folder or
    hub repo with a vae/ subfolder."""
    repo = vae or DEFAULT_VAE
    folder = Path(repo).expanduser()
    if folder.is_dir():
        return str(folder), (None if (folder / "config.json").is_file() else "vae")
    return repo, "vae"


class DepthFMPredictor(Predictor):
    """DepthFM on one image at a time; `ensemble_size` members share one batch (as the official code)."""

    family = "depthfm"
    kind = "depth"

    def __init__(
        self,
        checkpoint: str,
        *,
        vae: str | None = None,
        steps: int | None = None,
        ensemble_size: int | None = None,
        seed: int = 0,
        input_size: int | None = None,
        device: str = "auto",
        precision: str = "auto",
    ) -> None:
        super().__init__()
        require("depthfm", "depthfm:", "diffusers")
        import torch
        from diffusers import AutoencoderKL

        from da2k.models import file_sha256, resolve_precision, select_device
        from da2k.predictors.depthfm_checkpoint import read_checkpoint

        ckpt = read_checkpoint(checkpoint)
        self.id = f"depthfm:{Path(checkpoint).name}"
        self.device = select_device(device)
        self.precision = resolve_precision(precision, self.device, who="depthfm")
        self.unet = _build_unet(ckpt).to(self.device)
        vae_repo, subfolder = _vae_source(vae)
        self.vae = load_strict(
            AutoencoderKL, vae_repo, subfolder, "depthfm VAE", "vae=DIR (a folder with config.json)"
        ).to(self.device)
        self.context = ckpt.empty_text_embedding.to(self.device)
        self.noising_step = ckpt.noising_step
        self.steps, self.ensemble_size, self.seed = steps or 2, ensemble_size or 4, seed
        if self.steps < 1 or self.ensemble_size < 1:
            raise Da2kError("depthfm: steps and ensemble_size must be at least 1")
        self.input_size = input_size
        self._torch = torch
        self._sha256 = file_sha256(ckpt.path)
        local = Path(checkpoint).expanduser().is_file()
        self._source = "local file" if local else f"hub:{'/'.join(checkpoint.split('/')[:2])}/{ckpt.path.name}"
        vae_folder = Path(vae_repo) / (subfolder or "")
        self.settings = {
            "steps": self.steps,
            "ensemble_size": self.ensemble_size,
            "seed": seed,
            "processing_resolution": input_size or "longer side kept, multiples of 64",
            "noising_step": self.noising_step,
            # where the VAE came from (never a local path) and what it holds
            "vae": "local folder" if vae_folder.is_dir() else f"hub:{vae_repo}/{subfolder}",
            "vae_sha256": folder_weights_sha256(
                str(vae_folder) if vae_folder.is_dir() else vae_repo, None, f"{subfolder}/config.json"
            ),
            "precision": self.precision.name,
            "align_corners": False,
        }

    @property
    def checkpoint_sha256(self) -> str:
        return self._sha256

    @property
    def checkpoint_source(self) -> str:
        return self._source

    @property
    def n_params(self) -> int:
        """UNet and VAE."""
        return sum(p.numel() for m in (self.unet, self.vae) for p in m.parameters())

    def prepare(self, key: str, load: ImageLoader) -> Any:
        image = load()
        size = processing_size(image.width, image.height, self.input_size)
        resized = image.convert("RGB").resize(size, resample=Image.Resampling.BILINEAR)
        x = self._torch.tensor(rgb_array(resized) / 127.5 - 1, dtype=self._torch.float32)[None]
        return x, (image.width, image.height)

    def forward(self, prepared: Any) -> Prediction:
        x, size = prepared
        torch = self._torch
        with torch.inference_mode(), self.precision.autocast(self.device):
            depth = self._depth(x.to(self.device))
        values = depth[0, 0].float().cpu().numpy()
        return Prediction(resize_map(values, size, Image.Resampling.BILINEAR), self.kind, align_corners=False)

    def _depth(self, x):
        """(1, 3, h, w) in [-1, 1] -> (1, 1, h, w) in [0, 1], `DepthFM.forward` of the official code."""
        torch = self._torch
        # The ensemble is encoded as one batch, as the official code does: the latent's memory layout
        # (channels-last for batches on some CPU kernels) decides the order `randn_like` fills it in.
        image_latent = self.vae.encode(x.repeat(self.ensemble_size, 1, 1, 1)).latent_dist.mode() * LATENT_SCALE
        state = image_latent
        if self.noising_step > 0:
            noise = torch.empty_like(image_latent, device="cpu", dtype=torch.float32)
            noise.normal_(0, 1, generator=cpu_generator(self.seed))  # = randn_like after manual_seed
            state = noising(image_latent, noise.to(self.device), self.noising_step)
        context = self.context.repeat(self.ensemble_size, 1, 1)
        latent = self._integrate(state, image_latent, context)
        decoded = self.vae.decode(1.0 / LATENT_SCALE * latent).sample.float()
        depth = decoded.mean(dim=1, keepdim=True)
        if self.ensemble_size > 1:
            depth = depth.mean(dim=0, keepdim=True)
        depth = depth.exp()
        lo, hi = depth.amin(), depth.amax()
        return (depth - lo) / (hi - lo)

    def _integrate(self, state, image_latent, context):
        """torchdiffeq's `odeint(method="euler", step_size=1/steps)` from t = 0 to 1: the value at
        the first grid time reaching 1 (interpolated linearly there, as torchdiffeq does)."""
        grid = euler_grid(self.steps).to(self.device)
        end = grid[-1]
        for t0, t1 in zip(grid[:-1], grid[1:]):
            velocity = self.unet(
                self._torch.cat([state, image_latent], dim=1),
                t0.expand(state.shape[0]),
                encoder_hidden_states=context,
            ).sample
            following = state + (t1 - t0) * velocity
            if t1 >= end:
                return following if t1 == end else state + (end - t0) / (t1 - t0) * (following - state)
            state = following
        return state


def _build_unet(ckpt) -> Any:
    """The checkpoint's UNet as `UNet2DConditionModel`, every key used and none missing."""
    from diffusers import UNet2DConditionModel

    from da2k.predictors.ldm_unet import diffusers_unet_config, ldm_to_diffusers

    unet = UNet2DConditionModel(**diffusers_unet_config(ckpt.hparams))
    try:
        unet.load_state_dict(ldm_to_diffusers(ckpt.state_dict, ckpt.hparams), strict=True)
    except RuntimeError as exc:
        first = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise Da2kError(f"{ckpt.path}: the state_dict does not fit its ldm_hparams ({first})") from None
    return unet.eval()
