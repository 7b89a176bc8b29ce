"""geowizard: against outputs of the official GeoWizard pipeline (tests/fixtures/geowizard_parity),
the official key sets, the joint attention, the ensemble, the evaluate CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from da2k.errors import Da2kError
from da2k.predictors import make_predictor

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from diffusion_fixtures import GEOWIZARD, geowizard_models, geowizard_repo, manifest  # noqa: E402

from da2k.predictors.depth_ensemble import ensemble_depths  # noqa: E402
from da2k.predictors.geowizard import class_labels, processing_size  # noqa: E402
from da2k.predictors.joint_attention import JointAttnProcessor  # noqa: E402

RUNS = manifest(GEOWIZARD)["runs"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return geowizard_repo(tmp_path_factory.mktemp("geowizard") / "Geowizard")


def _spec(repo: Path, run: dict) -> str:
    return (
        f"geowizard:{repo};steps={run['steps']};ensemble_size={run['ensemble_size']};seed={run['seed']}"
        f";input_size={run['processing_res']};domain={run['domain']}"
    )


@pytest.mark.parametrize("run", RUNS, ids=[r["file"][4:-4] for r in RUNS])
def test_geowizard_map_equals_the_official_pipeline(repo, run):
    reference = np.load(GEOWIZARD / run["file"])
    image = Image.open(GEOWIZARD / "geowizard_input.png").convert("RGB")
    pred = make_predictor(_spec(repo, run), device="cpu", precision="fp32").predict(image)
    assert pred.kind == "depth" and pred.values.shape == reference.shape == (90, 120)
    assert np.abs(pred.values - reference).max() <= 1e-4 * np.abs(reference).max()


def test_geowizard_components_have_the_official_keys_and_load_strictly(repo):
    official = manifest(GEOWIZARD)["keys"]
    for name, model in geowizard_models().items():
        assert {k: list(v.shape) for k, v in model.state_dict().items()} == official[name], name
    from safetensors.torch import load_file, save_file

    weights = repo / "unet" / "diffusion_pytorch_model.safetensors"
    cut = repo.parent / "cut"
    import shutil

    shutil.copytree(repo, cut)
    state = load_file(weights)
    state.pop(next(iter(state)))
    save_file(state, cut / "unet" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(Da2kError, match="do not match its config"):
        make_predictor(f"geowizard:{cut}", device="cpu")


def test_joint_attention_shares_keys_across_the_depth_and_normal_halves():
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    attn = Attention(query_dim=8, heads=2, dim_head=4).eval()
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        joint = JointAttnProcessor()(attn, x)
        # by hand: each half attends to the 10 tokens of both halves
        q = attn.to_q(x).view(2, 5, 2, 4).transpose(1, 2)
        kv = lambda f: torch.cat(f(x).chunk(2), dim=1).repeat(2, 1, 1).view(2, 10, 2, 4).transpose(1, 2)  # noqa: E731
        w = torch.softmax(q @ kv(attn.to_k).transpose(-1, -2) / 2.0, dim=-1)
        manual = attn.to_out[0]((w @ kv(attn.to_v)).transpose(1, 2).reshape(2, 5, 8))
        plain = attn(x)
        changed = x.clone()
        changed[1] += 1.0
        joint_changed = JointAttnProcessor()(attn, changed)
    torch.testing.assert_close(joint, manual, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(joint, plain)  # not the per-branch attention of the fallback
    assert not torch.allclose(joint[0], joint_changed[0])  # depth sees the normal half


def test_ensemble_of_affine_copies_is_their_common_normalised_map():
    base = torch.rand(1, 12, 16)
    maps = torch.cat([base, 2 * base + 0.5, 0.3 * base - 1.0])
    merged = ensemble_depths(maps)
    expected = (base[0] - base.min()) / (base.max() - base.min())
    torch.testing.assert_close(merged, expected, rtol=1e-3, atol=1e-3)


def test_class_labels_and_sizes_follow_the_official_code():
    labels = class_labels("outdoor", torch.float32, "cpu")
    assert labels.shape == (2, 10)
    assert torch.allclose(labels[0, :4], torch.tensor([0.0, np.sin(1.0), 1.0, np.cos(1.0)], dtype=torch.float32))
    assert torch.allclose(labels[:, 4:7], torch.tensor([[0.0, np.sin(1.0), 0.0]] * 2, dtype=torch.float32))
    assert processing_size(120, 90, 128) == (128, 96) and processing_size(64, 48, 768) == (768, 576)


def test_geowizard_options_are_checked_and_recorded(repo):
    with pytest.raises(Da2kError, match="domain must be one of"):
        make_predictor(f"geowizard:{repo};domain=space", device="cpu")
    with pytest.raises(Da2kError, match="vae"):
        make_predictor(f"geowizard:{repo};vae=x", device="cpu")  # an option it does not use
    p = make_predictor(f"geowizard:{repo}", device="cpu", precision="fp32")
    assert p.settings == {
        "model": "v1 (unet)",
        "steps": 10,
        "ensemble_size": 10,
        "seed": 0,
        "domain": "indoor",
        "processing_resolution": 768,
        "precision": "fp32",
        "align_corners": False,
    }
    assert len(p.checkpoint_sha256) == 64 and p.checkpoint_source == "local folder" and p.n_params > 0


def test_geowizard_offline_without_the_weights_is_one_line():
    with pytest.raises(Da2kError, match="lemonaddie/Geowizard") as err:
        make_predictor("geowizard:lemonaddie/Geowizard", device="cpu")
    assert "\n" not in str(err.value) and "HF_HUB_OFFLINE" in str(err.value)


def test_geowizard_runs_in_bf16_autocast(repo):
    image = Image.open(GEOWIZARD / "geowizard_input.png").convert("RGB")
    spec = f"geowizard:{repo};steps=2;ensemble_size=1;seed=7;input_size=128"
    a = make_predictor(spec, device="cpu", precision="fp32").predict(image).values
    p = make_predictor(spec, device="cpu", precision="bf16")
    b = p.predict(image).values
    assert p.settings["precision"] == "bf16" and np.isfinite(b).all()
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9


def test_evaluate_cli_runs_geowizard_end_to_end_offline(tmp_path, repo):
    from click.testing import CliRunner

    from da2k.cli import main
    from da2k.synthetic import make_benchmark

    bench = make_benchmark(tmp_path / "bench", n_images=2, seed=4)
    args = ["evaluate", "--model", f"geowizard:{repo};steps=2;ensemble_size=2", "--device", "cpu"]
    args += ["--data", str(bench.root), "--out", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    [run_json] = (tmp_path / "results").glob("*.json")
    out = json.loads(run_json.read_text())
    assert out["model"]["predictor"] == "geowizard" and out["model"]["kind"] == "depth"
    settings = out["model"]["settings"]
    assert settings["steps"] == 2 and settings["ensemble_size"] == 2 and settings["domain"] == "indoor"
    assert out["overall"]["n"] == bench.n_pairs
