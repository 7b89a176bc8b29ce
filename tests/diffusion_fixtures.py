"""Tiny DepthFM and GeoWizard weights rebuilt from the parity fixtures' recipe (see the README in
tests/fixtures/depthfm_parity and tests/fixtures/geowizard_parity): deterministic tensors named by
the official keys, written in the official formats (a torch-saved DepthFM checkpoint dict; a
folder laid out like the GeoWizard hub repo)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from da2k.models.parity import deterministic_tensor

FIXTURES = Path(__file__).parent / "fixtures"
DEPTHFM = FIXTURES / "depthfm_parity"
GEOWIZARD = FIXTURES / "geowizard_parity"


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _fill(model: torch.nn.Module, prefix: str) -> torch.nn.Module:
    state = {k: deterministic_tensor(prefix + k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    return model


def depthfm_checkpoint(config: str, path: Path, hparams: dict | None = None) -> Path:
    """The official-format checkpoint of a fixture configuration (`sd2` or `sd1`): ldm_hparams,
    state_dict under the ldm keys, noising_step and a numpy empty-text embedding."""
    c = manifest(DEPTHFM)["configs"][config]
    state = {k: deterministic_tensor(k, tuple(shape), torch.float32) for k, shape in c["keys"].items()}
    embedding = np.random.default_rng(c["empty_text_embedding_seed"]).standard_normal(c["empty_text_embedding_shape"])
    ckpt = {
        "ldm_hparams": hparams if hparams is not None else c["ldm_hparams"],
        "state_dict": state,
        "noising_step": c["noising_step"],
        "empty_text_embedding": embedding.astype(np.float32),
    }
    torch.save(ckpt, path)
    return path


def depthfm_vae(folder: Path) -> Path:
    """The fixtures' tiny AutoencoderKL saved as a local folder (config.json + safetensors)."""
    from diffusers import AutoencoderKL

    _fill(AutoencoderKL(**manifest(DEPTHFM)["vae_config"]), "vae.").save_pretrained(folder)
    return folder


def geowizard_models() -> dict[str, torch.nn.Module]:
    """unet, vae and image_encoder of the GeoWizard fixture with their deterministic weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    m = manifest(GEOWIZARD)
    return {
        "unet": _fill(UNet2DConditionModel(**m["unet_config"]), "unet."),
        "vae": _fill(AutoencoderKL(**m["vae_config"]), "vae."),
        "image_encoder": _fill(CLIPVisionModelWithProjection(CLIPVisionConfig(**m["clip_config"])), "image_encoder."),
    }


def geowizard_repo(folder: Path) -> Path:
    """A folder laid out like the `lemonaddie/Geowizard` hub repo, with the fixture's tiny weights."""
    from diffusers import DDIMScheduler
    from transformers import CLIPImageProcessor

    m = manifest(GEOWIZARD)
    for name, model in geowizard_models().items():
        model.save_pretrained(folder / name)
    CLIPImageProcessor(**m["feature_extractor"]).save_pretrained(folder / "feature_extractor")
    DDIMScheduler(**m["scheduler"]).save_pretrained(folder / "scheduler")
    index = {
        "_class_name": "DepthNormalEstimationPipeline",
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder
