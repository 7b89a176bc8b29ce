"""Our Depth Anything computes the official function and loads the official checkpoints.

References come from the official code run on deterministic weights (fixtures/official_parity).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from official import FIXTURES, official_keys, reference, reference_input

from da2k.models import build_model, infer_lowres
from da2k.models.parity import deterministic_state_dict

PARITY_MODELS = ["vits", "vitb", "v1-vits", "metric-hypersim-vits"]


@pytest.mark.parametrize("name", ["vits", "vitb", "vitl", "vitg", "v1-vits", "metric-hypersim-vits"])
def test_state_dict_has_exactly_the_official_keys_and_shapes(name):
    with torch.device("meta"):  # ViT-G is 1.3B parameters: shapes only
        model = build_model(name)
    ours = {k: [list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()}
    official = official_keys(name)
    assert list(ours) == list(official)
    assert ours == {k: [shape, dtype] for k, (shape, dtype) in official.items()}


@pytest.fixture(scope="module", params=PARITY_MODELS)
def parity_model(request):
    model = build_model(request.param)
    model.load_state_dict(deterministic_state_dict(model), strict=True)
    return request.param, model, reference(request.param)


def test_network_output_matches_official(parity_model):
    _, model, ref = parity_model
    with torch.inference_mode():
        out = model(reference_input(ref)).numpy()
    assert out.shape == ref["depth"].shape
    assert np.abs(out - ref["depth"]).max() <= 1e-4 * np.abs(ref["depth"]).max()


def test_intermediate_tokens_match_official(parity_model):
    name, model, ref = parity_model
    if "cls_0" not in ref:
        pytest.skip(f"the {name} fixture stores no tokens")
    with torch.inference_mode():
        features = model.pretrained.intermediate_layers(reference_input(ref), model.variant.layers)
    for i, (tokens, cls) in enumerate(features):
        np.testing.assert_allclose(cls.numpy(), ref[f"cls_{i}"], atol=1e-4 * np.abs(ref[f"cls_{i}"]).max())
        first8 = ref[f"tokens_{i}_first8"]
        np.testing.assert_allclose(tokens[:, :8].numpy(), first8, atol=1e-4 * np.abs(first8).max())


@pytest.fixture(scope="module")
def demo_lowres(parity_model):
    _, model, _ = parity_model
    return infer_lowres(model, FIXTURES / "demo01.jpg")


def test_network_input_has_the_official_shape(parity_model, demo_lowres):
    _, _, ref = parity_model
    assert [1, 3, *demo_lowres.values.shape] == list(ref["demo01_net_input_shape"])


def test_end_to_end_on_a_jpeg_matches_official(parity_model, demo_lowres):
    _, model, ref = parity_model
    full = demo_lowres.upsample().numpy()
    assert list(full.shape) == list(ref["demo01_shape"])
    points = ref["demo01_points_hw"]
    ours, theirs = full[points[:, 0], points[:, 1]], ref["demo01_values"]
    assert np.abs(ours - theirs).mean() <= 1e-3 * np.abs(theirs).mean()
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(points), (2, 20000))
    agree = np.sign(ours[i] - ours[j]) == np.sign(theirs[i] - theirs[j])
    assert agree.mean() >= 0.999


def test_relative_output_is_nonnegative_and_metric_is_bounded_by_max_depth(parity_model):
    name, model, ref = parity_model
    if model.variant.max_depth is None:
        assert ref["depth"].min() >= 0
    else:
        with torch.inference_mode():
            out = model(reference_input(ref))
        assert 0 < out.min() and out.max() < model.variant.max_depth == 20.0
