import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from da2k.scoring import (
    Score,
    mcnemar_exact,
    order_scenarios,
    overall,
    pair_correct,
    paired,
    sample_bilinear,
    score_by_scenario,
    to_disparity,
    wilson_ci,
)


def test_tie_counts_as_wrong():
    assert pair_correct(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 4.0])).tolist() == [False, True, False]


def test_nan_counts_as_wrong():
    assert not pair_correct(np.array([np.nan, 1.0]), np.array([0.0, np.nan])).any()


def test_depth_is_negated_disparity_kept():
    assert to_disparity(np.array([1.0, 2.0]), "depth").tolist() == [-1.0, -2.0]
    assert to_disparity(np.array([1.0, 2.0]), "disparity").tolist() == [1.0, 2.0]
    with pytest.raises(ValueError):
        to_disparity(np.array([1.0]), "inverse")


def test_wilson_interval_known_values():
    lo, hi = wilson_ci(8, 10)
    assert lo == pytest.approx(0.4901624, abs=1e-6) and hi == pytest.approx(0.9433178, abs=1e-6)
    assert wilson_ci(0, 0) == (0.0, 0.0)
    assert wilson_ci(0, 5)[0] == 0.0 and wilson_ci(5, 5)[1] == 1.0
    lo, hi = wilson_ci(1000, 2000)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(2 * 1.959964 * math.sqrt(0.25 / 2000), rel=1e-3)


def test_overall_is_pair_weighted_and_scenario_mean_unweighted():
    scores = score_by_scenario(["indoor"] * 4 + ["aerial"], np.array([1, 1, 1, 1, 0], dtype=bool))
    assert scores == {"indoor": Score(4, 4), "aerial": Score(1, 0)}
    total = overall(scores)
    assert (total["n"], total["correct"]) == (5, 4)
    assert total["accuracy"] == pytest.approx(0.8)
    assert total["scenario_mean"] == pytest.approx(0.5)
    assert total["ci95"] == list(wilson_ci(4, 5))


def test_score_to_dict_is_a_fraction_with_interval():
    d = Score(n=3, correct=2).to_dict()
    assert d["accuracy"] == pytest.approx(2 / 3) and 0 <= d["ci95"][0] < d["accuracy"] < d["ci95"][1] <= 1


def test_mcnemar_exact_known_values():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(400, 600) < 1e-9


def test_paired_counts_discordant_pairs():
    p = paired(np.array([1, 1, 0, 0, 1], bool), np.array([1, 0, 1, 0, 0], bool))
    assert (p.n, p.a_correct, p.b_correct, p.b, p.c) == (5, 3, 2, 2, 1)
    assert p.p_value == mcnemar_exact(2, 1)


def test_order_scenarios_canonical_first():
    assert order_scenarios({"zoo", "object", "indoor"}, ("indoor", "outdoor", "object")) == ["indoor", "object", "zoo"]


@pytest.mark.parametrize("align_corners", [False, True])
def test_sampling_low_res_equals_upsample_then_index(align_corners):
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = rng.integers(1, 24, size=2)
        H, W = rng.integers(1, 90, size=2)
        pred = rng.standard_normal((h, w)).astype(np.float32)
        full = F.interpolate(
            torch.from_numpy(pred)[None, None], size=(int(H), int(W)), mode="bilinear", align_corners=align_corners
        )[0, 0].numpy()
        points = np.stack([rng.integers(0, H, 64), rng.integers(0, W, 64)], axis=1)
        values = sample_bilinear(pred, points, (int(H), int(W)), align_corners)
        np.testing.assert_allclose(values, full[points[:, 0], points[:, 1]], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("align_corners", [False, True])
def test_sampling_full_resolution_map_is_exact_indexing(align_corners):
    rng = np.random.default_rng(1)
    pred = rng.standard_normal((17, 23))
    pred[3, 5] = np.inf
    points = np.argwhere(np.ones_like(pred, dtype=bool))
    values = sample_bilinear(pred, points, pred.shape, align_corners)
    assert np.array_equal(values, pred[points[:, 0], points[:, 1]])


def test_constant_regions_stay_exact_ties_after_resampling():
    pred = np.full((7, 9), 0.1, dtype=np.float32)
    points = np.stack(np.meshgrid(np.arange(50), np.arange(61), indexing="ij"), -1).reshape(-1, 2)
    for align_corners in (False, True):
        values = sample_bilinear(pred, points, (50, 61), align_corners)
        assert np.all(values == np.float64(np.float32(0.1)))


def test_sub_pixel_points_interpolate_between_pixels():
    pred = np.array([[0.0, 1.0], [2.0, 3.0]])
    values = sample_bilinear(pred, np.array([[0.5, 0.5], [0.0, 0.25]]), (2, 2), align_corners=True)
    assert values.tolist() == [1.5, 0.25]
