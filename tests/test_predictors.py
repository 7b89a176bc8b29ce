import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from da2k.benchmark import map_path
from da2k.errors import Da2kError
from da2k.predictors import Prediction, PredictorOptions, make_predictor
from da2k.predictors.marigold import MarigoldPredictor
from da2k.predictors.precomputed import PrecomputedPredictor
from da2k.scoring import sample_bilinear

KEY = "images/indoor/a.jpg"


@pytest.fixture
def image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))


def test_map_path_replaces_the_extension():
    assert map_path("maps", KEY, ".npy") == Path("maps/images/indoor/a.npy")


def test_precomputed_needs_a_kind(tmp_path):
    with pytest.raises(Da2kError, match="--kind"):
        make_predictor(f"precomputed:{tmp_path}")


def test_precomputed_reads_npy_at_any_resolution(tmp_path, image):
    path = map_path(tmp_path, KEY, ".npy")
    path.parent.mkdir(parents=True)
    np.save(path, np.arange(12, dtype=np.float32).reshape(1, 3, 4))
    pred = make_predictor(f"precomputed:{tmp_path}", kind="depth").predict(image, KEY)
    assert pred.values.shape == (3, 4) and pred.kind == "depth" and not pred.align_corners


def test_precomputed_reads_16_bit_png(tmp_path, image):
    path = map_path(tmp_path, KEY, ".png")
    path.parent.mkdir(parents=True)
    values = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(path)
    pred = PrecomputedPredictor(tmp_path, "disparity").predict(image, KEY)
    assert pred.values.tolist() == values.tolist()


def test_precomputed_rejects_colour_png(tmp_path, image):
    path = map_path(tmp_path, KEY, ".png")
    path.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    with pytest.raises(Da2kError, match="single-channel"):
        PrecomputedPredictor(tmp_path, "disparity").predict(image, KEY)


def test_precomputed_finds_maps_without_the_images_prefix(tmp_path, image):
    (tmp_path / "indoor").mkdir()
    np.save(tmp_path / "indoor/a.npy", np.ones((2, 2)))
    assert PrecomputedPredictor(tmp_path, "depth").predict(image, KEY).values.shape == (2, 2)


def test_precomputed_missing_map_names_the_expected_file(tmp_path, image):
    with pytest.raises(Da2kError, match=r"images/indoor/a\.npy"):
        PrecomputedPredictor(tmp_path, "depth").predict(image, KEY)


def test_precomputed_fingerprint_is_the_folder_content(tmp_path, image):
    path = map_path(tmp_path, KEY, ".npy")
    path.parent.mkdir(parents=True)
    np.save(path, np.ones((2, 2)))
    first = PrecomputedPredictor(tmp_path, "depth")
    assert len(first.checkpoint_sha256) == 64  # known before any map is read (mining records it then)
    np.save(path, np.zeros((2, 2)))
    second = PrecomputedPredictor(tmp_path, "depth")
    assert second.checkpoint_sha256 != first.checkpoint_sha256
    assert second.predict(image, KEY).values.shape == (2, 2)
    with pytest.raises(Da2kError, match="changed since the run started"):
        first.predict(image, KEY)  # the folder it fingerprinted is no longer there


def test_python_predictor_from_a_file(tmp_path, image):
    module = tmp_path / "my_model.py"
    module.write_text(
        "import numpy as np\n"
        "def predict(image):\n"
        "    return np.asarray(image, dtype=float).mean(-1), 'depth'\n"
        "def bad(image):\n"
        "    return 1\n"
    )
    p = make_predictor(f"python:{module}:predict")
    pred = p.predict(image)
    assert pred.values.shape == (48, 64) and pred.kind == "depth"
    assert p.id == f"python:{module}:predict" and len(p.checkpoint_sha256) == 64
    with pytest.raises(Da2kError, match="must return"):
        make_predictor(f"python:{module}:bad").predict(image)
    with pytest.raises(Da2kError, match="no callable"):
        make_predictor(f"python:{module}:missing")


def test_python_predictor_from_an_importable_module(tmp_path, image, monkeypatch):
    (tmp_path / "torch_model.py").write_text(
        "import torch\ndef run(image):\n    return torch.ones(1, 5, 6), 'disparity', True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    pred = make_predictor("python:torch_model:run").predict(image)
    assert pred.values.shape == (5, 6) and pred.kind == "disparity" and pred.align_corners


def test_unknown_prefix_and_unknown_model_are_clear_errors():
    with pytest.raises(Da2kError, match="precomputed:DIR"):
        make_predictor("onnx:model")
    from da2k.models import ModelError

    with pytest.raises(ModelError, match="vits"):
        make_predictor("vitz")


# ---- ours -----------------------------------------------------------------------------------


def test_our_model_samples_the_network_output_like_the_full_resolution_map(tiny_weights, image):
    from da2k.models import build_model, infer

    p = make_predictor("vit-tiny", PredictorOptions(weights=str(tiny_weights), device="cpu", precision="fp32"))
    pred = p.predict(image)
    assert pred.kind == "disparity" and pred.align_corners  # V2 convention
    assert pred.values.shape != (48, 64)  # network resolution, not the image's
    full = infer(build_model("vit-tiny", tiny_weights), image, p.input_size).numpy()
    points = np.argwhere(np.ones((48, 64), bool))
    np.testing.assert_allclose(
        sample_bilinear(pred.values, points, (48, 64), pred.align_corners),
        full[points[:, 0], points[:, 1]],
        rtol=1e-4,
        atol=1e-4 * np.abs(full).max(),
    )
    described = p.describe()
    assert described["id"] == "vit-tiny" and described["predictor"] == "depth-anything"
    assert described["input_size"] == 224 and len(described["checkpoint_sha256"]) == 64
    assert described["settings"]["precision"] == "fp32"


# ---- transformers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_hf_repo(tmp_path_factory) -> Path:
    """A randomly initialised Depth Anything in transformers format: a fake local hub repo."""
    transformers = pytest.importorskip("transformers")
    backbone = transformers.Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=56,
        patch_size=14,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        patch_size=14,
    )
    torch.manual_seed(0)
    repo = tmp_path_factory.mktemp("hf") / "tiny-depth-anything"
    transformers.DepthAnythingForDepthEstimation(config).save_pretrained(repo)
    transformers.DPTImageProcessor(
        size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14, do_pad=False
    ).save_pretrained(repo)
    return repo


def test_hf_depth_anything_is_disparity_sampled_at_network_resolution(tiny_hf_repo, image):
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    p = make_predictor(f"hf:{tiny_hf_repo}", PredictorOptions(device="cpu"))
    assert p.kind == "disparity" and p.id == f"hf:{tiny_hf_repo}" and len(p.checkpoint_sha256) == 64
    pred = p.predict(image)
    processor = AutoImageProcessor.from_pretrained(tiny_hf_repo)
    model = AutoModelForDepthEstimation.from_pretrained(tiny_hf_repo).eval()
    with torch.inference_mode():
        raw = model(**processor(images=image, return_tensors="pt")).predicted_depth
    np.testing.assert_allclose(pred.values, raw[0].numpy(), rtol=1e-5, atol=1e-6)
    full = F.interpolate(raw[None], size=(48, 64), mode="bilinear", align_corners=False)[0, 0].numpy()
    points = np.array([[0, 0], [47, 63], [20, 31], [5, 60]])
    np.testing.assert_allclose(
        sample_bilinear(pred.values, points, (48, 64), pred.align_corners),
        full[points[:, 0], points[:, 1]],
        rtol=1e-5,
        atol=1e-6,
    )


def test_hf_kind_can_be_overridden(tiny_hf_repo):
    assert make_predictor(f"hf:{tiny_hf_repo}", PredictorOptions(kind="depth", device="cpu")).kind == "depth"


def test_hf_missing_repo_is_a_clear_error(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(Da2kError, match="hf: the folder .*nothing-here does not exist"):
        make_predictor(f"hf:{tmp_path / 'nothing-here'}")


# ---- marigold -------------------------------------------------------------------------------


def test_marigold_without_diffusers_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers -> ImportError
    with pytest.raises(Da2kError, match=r"pip install 'da2k\[marigold\]'"):
        make_predictor("marigold:prs-eth/marigold-depth-v1-1")


class _FakeMarigold:
    """Stands in for diffusers.MarigoldDepthPipeline: records calls, returns seeded noise."""

    default_processing_resolution = 768
    default_denoising_steps = 4
    calls: list = []

    @classmethod
    def from_pretrained(cls, repo, **kwargs):
        return cls()

    def to(self, device):
        return self

    def set_progress_bar_config(self, **kwargs):
        pass

    def __call__(self, image, **kwargs):
        self.calls.append(kwargs)
        noise = torch.rand(1, 6, 8, 1, generator=kwargs["generator"]).numpy()
        return types.SimpleNamespace(prediction=noise)


def test_marigold_records_seed_ensemble_and_steps_and_is_depth(monkeypatch, image):
    monkeypatch.setitem(sys.modules, "diffusers", types.SimpleNamespace(MarigoldDepthPipeline=_FakeMarigold))
    p = make_predictor(
        "marigold:prs-eth/marigold-depth-v1-1",
        PredictorOptions(seed=5, ensemble_size=3, steps=2, device="cpu"),
    )
    assert isinstance(p, MarigoldPredictor) and p.kind == "depth"
    assert p.settings["seed"] == 5 and p.settings["ensemble_size"] == 3 and p.settings["num_inference_steps"] == 2
    first, second = p.predict(image), p.predict(image)
    assert isinstance(first, Prediction) and first.values.shape == (6, 8) and first.kind == "depth"
    assert np.array_equal(first.values, second.values)  # the same seed for every image
    call = _FakeMarigold.calls[-1]
    assert call["ensemble_size"] == 3 and call["num_inference_steps"] == 2 and call["match_input_resolution"] is False


@pytest.fixture(scope="module")
def tiny_marigold(tmp_path_factory) -> Path:
    """A randomly initialised, few-kilobyte Marigold depth pipeline saved as a local repo."""
    diffusers = pytest.importorskip("diffusers")
    import json

    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    root = tmp_path_factory.mktemp("marigold")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2, "a</w>": 3}
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"), model_max_length=77)
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=16,
        in_channels=8,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=8,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    vae = diffusers.AutoencoderKL(
        block_out_channels=[8, 16],
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=8,
            intermediate_size=16,
            num_attention_heads=2,
            num_hidden_layers=1,
            vocab_size=len(vocab),
            max_position_embeddings=77,
        )
    )
    scheduler = diffusers.LCMScheduler(
        prediction_type="v_prediction", beta_schedule="scaled_linear", timestep_spacing="trailing", clip_sample=False
    )
    pipe = diffusers.MarigoldDepthPipeline(
        unet=unet,
        vae=vae,
        scheduler=scheduler,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        prediction_type="depth",
        default_denoising_steps=1,
        default_processing_resolution=32,
    )
    pipe.save_pretrained(root / "pipe")
    return root / "pipe"


def test_marigold_pipeline_end_to_end(tiny_marigold, image):
    p = make_predictor(f"marigold:{tiny_marigold}", seed=1, ensemble_size=2, steps=1, device="cpu")
    first, second = p.predict(image), p.predict(image)
    assert first.kind == "depth" and first.values.shape == (24, 32)  # processing resolution, aspect kept
    assert np.array_equal(first.values, second.values)
    assert p.settings["seed"] == 1 and p.settings["ensemble_size"] == 2 and p.settings["num_inference_steps"] == 1
    assert p.input_size == 32 and len(p.checkpoint_sha256) == 64


def test_marigold_runs_bf16_on_the_cpu_as_autocast_over_fp32_weights(tiny_marigold, image):
    spec = f"marigold:{tiny_marigold}"
    fp32 = make_predictor(spec, seed=1, ensemble_size=2, steps=1, device="cpu", precision="fp32")
    bf16 = make_predictor(spec, seed=1, ensemble_size=2, steps=1, device="cpu", precision="bf16")
    assert bf16.settings["precision"] == "bf16" and fp32.settings["precision"] == "fp32"
    a, b = fp32.predict(image).values, bf16.predict(image).values
    assert b.dtype == np.float32 and np.abs(a - b).max() <= 0.05  # measured 0.021 on this pipeline
    with pytest.raises(Exception, match="fp16 is for GPUs"):
        make_predictor(spec, device="cpu", precision="fp16")


def test_hf_records_and_honours_the_precision(tiny_hf_repo, image):
    p = make_predictor(f"hf:{tiny_hf_repo}", PredictorOptions(device="cpu", precision="bf16"))
    assert p.settings["precision"] == "bf16" and np.isfinite(p.predict(image).values).all()


def test_hub_models_fail_fast_in_one_line_when_the_hub_is_unreachable(monkeypatch, tmp_path):
    """No HF_HUB_OFFLINE, nothing listening at the endpoint: the cache is read, no retry loop."""
    pytest.importorskip("transformers")
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on port 9
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    started = time.monotonic()
    with pytest.raises(Da2kError, match=r"hf: someone/depth-model is not in the local hub cache \(the hub at") as err:
        make_predictor("hf:someone/depth-model", device="cpu")
    assert "\n" not in str(err.value) and "hf:DIR" in str(err.value)
    assert time.monotonic() - started < 10


def test_only_our_networks_take_compile():
    from da2k.predictors import takes_option

    assert takes_option("vitl", "compile") and takes_option("vits;input_size=392", "compile")
    assert not takes_option("hf:depth-anything/Depth-Anything-V2-Small-hf", "compile")
    assert not takes_option("precomputed:maps/;kind=depth", "compile")
    assert not takes_option("nosuchprefix:x", "compile")
