"""depthfm: against outputs of the official DepthFM code (tests/fixtures/depthfm_parity), strict key
conversion, checkpoint reading without unpickling code, the evaluate CLI end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from da2k.errors import Da2kError
from da2k.predictors import make_predictor

pytest.importorskip("diffusers")

from diffusion_fixtures import DEPTHFM, depthfm_checkpoint, depthfm_vae, manifest  # noqa: E402

from da2k.predictors.depthfm import processing_size  # noqa: E402
from da2k.predictors.depthfm_checkpoint import read_checkpoint, save_safetensors  # noqa: E402
from da2k.predictors.ldm_unet import diffusers_unet_config, ldm_to_diffusers  # noqa: E402

RUNS = manifest(DEPTHFM)["runs"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("depthfm")
    out = {name: depthfm_checkpoint(name, root / f"{name}.ckpt") for name in manifest(DEPTHFM)["configs"]}
    out["vae"] = depthfm_vae(root / "vae")
    return out


def _spec(weights: dict[str, Path], run: dict, path: Path | None = None) -> str:
    spec = f"depthfm:{path or weights[run['config']]};vae={weights['vae']};steps={run['steps']}"
    spec += f";ensemble_size={run['ensemble_size']};seed={run['seed']}"
    return spec + (f";input_size={run['processing_res']}" if run["processing_res"] > 0 else "")


@pytest.mark.parametrize("run", RUNS, ids=[r["file"][4:-4] for r in RUNS])
def test_depthfm_map_equals_the_official_code(weights, run):
    reference = np.load(DEPTHFM / run["file"])
    image = Image.open(DEPTHFM / "depthfm_input.png").convert("RGB")
    p = make_predictor(_spec(weights, run), device="cpu", precision="fp32")
    pred = p.predict(image)
    assert pred.kind == "depth" and pred.values.shape == reference.shape == (96, 160)
    assert np.abs(pred.values - reference).max() <= 1e-4 * np.abs(reference).max()


def test_depthfm_keys_convert_one_to_one_and_load_strictly():
    from diffusers import UNet2DConditionModel

    for config in manifest(DEPTHFM)["configs"].values():
        state = {k: torch.zeros(shape) for k, shape in config["keys"].items()}
        converted = ldm_to_diffusers(state, config["ldm_hparams"])
        target = UNet2DConditionModel(**diffusers_unet_config(config["ldm_hparams"])).state_dict()
        assert len(converted) == len(state)  # every checkpoint key used once
        assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in target.items()}
        with pytest.raises(Da2kError, match="fit no ldm UNet module"):
            ldm_to_diffusers({**state, "input_blocks.1.0.extra.weight": torch.zeros(1)}, config["ldm_hparams"])


def test_depthfm_refuses_a_checkpoint_missing_a_key(tmp_path, weights):
    ckpt = torch.load(weights["sd1"], weights_only=False)
    del ckpt["state_dict"]["middle_block.1.proj_out.weight"]
    torch.save(ckpt, tmp_path / "cut.ckpt")
    with pytest.raises(Da2kError, match="does not fit its ldm_hparams"):
        make_predictor(f"depthfm:{tmp_path / 'cut.ckpt'};vae={weights['vae']}", device="cpu")


def test_depthfm_hparams_it_cannot_express_are_refused():
    hp = dict(manifest(DEPTHFM)["configs"]["sd1"]["ldm_hparams"])
    with pytest.raises(Da2kError, match="resblock_updown"):
        diffusers_unet_config({**hp, "resblock_updown": True})
    with pytest.raises(Da2kError, match="unknown UNetModel argument"):
        diffusers_unet_config({**hp, "flash": True})


def test_depthfm_checkpoint_with_omegaconf_hparams_loads_without_unpickling_code(tmp_path):
    omegaconf = pytest.importorskip("omegaconf")
    hp = omegaconf.OmegaConf.create(manifest(DEPTHFM)["configs"]["sd1"]["ldm_hparams"])
    ckpt = read_checkpoint(depthfm_checkpoint("sd1", tmp_path / "omega.ckpt", hparams=hp))
    assert ckpt.hparams["channel_mult"] == [1, 2] and type(ckpt.hparams["channel_mult"]) is list
    assert ckpt.empty_text_embedding.dtype == torch.float32 and ckpt.noising_step == 0


class Payload:
    """Stands for any class a checkpoint could smuggle in."""


def test_depthfm_checkpoint_with_other_objects_is_refused_in_one_line(tmp_path):
    torch.save(
        {"ldm_hparams": {}, "state_dict": {}, "noising_step": 0, "empty_text_embedding": Payload()}, tmp_path / "x"
    )
    with pytest.raises(Da2kError, match="refusing to unpickle") as err:
        read_checkpoint(tmp_path / "x")
    assert "\n" not in str(err.value)


def test_depthfm_safetensors_copy_gives_the_same_map(tmp_path, weights):
    run = RUNS[0]
    copy = save_safetensors(read_checkpoint(weights[run["config"]]), tmp_path / "depthfm.safetensors")
    image = Image.open(DEPTHFM / "depthfm_input.png").convert("RGB")
    a = make_predictor(_spec(weights, run), device="cpu", precision="fp32").predict(image).values
    b = make_predictor(_spec(weights, run, copy), device="cpu", precision="fp32").predict(image).values
    assert np.array_equal(a, b)


def test_depthfm_missing_checkpoint_says_where_to_download_it(tmp_path):
    with pytest.raises(Da2kError, match=r"ommer-lab\.com/files/depthfm/depthfm-v1\.ckpt"):
        make_predictor(f"depthfm:{tmp_path / 'depthfm-v1.ckpt'}")


def test_depthfm_missing_vae_offline_is_one_line(weights):
    with pytest.raises(Da2kError, match="stable-diffusion-v1-5") as err:
        make_predictor(f"depthfm:{weights['sd1']}", device="cpu")
    assert "\n" not in str(err.value)


def test_processing_size_rounds_like_the_official_script():
    assert processing_size(160, 96, None) == (128, 128)  # 2.5 and 1.5 round to even
    assert processing_size(160, 96, 64) == (64, 64)
    assert processing_size(1500, 2000, 768) == (576, 768)
    assert processing_size(20, 10, None) == (64, 64)  # would round to 0 in the official script


def test_depthfm_records_its_settings_and_runs_in_bf16(weights):
    image = Image.open(DEPTHFM / "depthfm_input.png").convert("RGB")
    run = RUNS[0]
    fp32 = make_predictor(_spec(weights, run), device="cpu", precision="fp32")
    bf16 = make_predictor(_spec(weights, run), device="cpu", precision="bf16")
    assert bf16.settings["precision"] == "bf16" and fp32.settings["noising_step"] == 400
    assert {"steps", "ensemble_size", "seed", "vae", "vae_sha256", "processing_resolution"} <= set(fp32.settings)
    a, b = fp32.predict(image).values, bf16.predict(image).values
    assert np.isfinite(b).all() and np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9
    with pytest.raises(Exception, match="fp16 is for GPUs"):
        make_predictor(_spec(weights, run), device="cpu", precision="fp16")


def test_evaluate_cli_runs_depthfm_end_to_end_offline(tmp_path, weights):
    from click.testing import CliRunner

    from da2k.cli import main
    from da2k.synthetic import make_benchmark

    bench = make_benchmark(tmp_path / "bench", n_images=2, seed=3)
    spec = f"depthfm:{weights['sd2']};vae={weights['vae']};steps=2;ensemble_size=1"
    args = ["evaluate", "--model", spec, "--precision", "fp32", "--device", "cpu"]
    args += ["--data", str(bench.root), "--out", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    [run_json] = (tmp_path / "results").glob("*.json")
    out = json.loads(run_json.read_text())
    assert out["model"]["predictor"] == "depthfm" and out["model"]["kind"] == "depth"
    assert out["model"]["checkpoint_source"] == "local file" and out["model"]["n_params"] > 0
    assert out["model"]["settings"]["ensemble_size"] == 1 and out["model"]["settings"]["precision"] == "fp32"
    rows = list(csv.DictReader(open(next((tmp_path / "results").glob("*.pairs.csv")))))
    assert len(rows) == out["overall"]["n"] > 0
    # the CSV holds the map (negated: depth) at the annotated points, read at full resolution
    from da2k.models import load_image

    row = rows[0]
    pair = json.loads((bench.root / "annotations.json").read_text())[row["image"]][int(row["pair_index"])]
    values = make_predictor(spec, device="cpu", precision="fp32").predict(load_image(bench.root / row["image"])).values
    closer = pair[pair["closer_point"]]
    assert float(row["value_closer"]) == pytest.approx(-float(values[closer[0], closer[1]]), abs=1e-6)
