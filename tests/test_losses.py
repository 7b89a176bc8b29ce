"""Depth losses: analytic cases (invariances, zeros, known values) and float64 gradient checks."""

from __future__ import annotations

import math

import pytest
import torch

from da2k.models.train.losses import (
    SiLogLoss,
    SSIGradientLoss,
    align_least_squares,
    gradient_matching,
    normalize_median,
    silog,
    trim_mask,
)


def _maps(b: int = 2, h: int = 9, w: int = 11, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(b, h, w, generator=g, dtype=dtype) + 0.5
    pred = torch.rand(b, h, w, generator=g, dtype=dtype) + 0.5
    mask = torch.rand(b, h, w, generator=g) > 0.2
    return pred, target, mask


@pytest.mark.parametrize("alignment", ["median", "lstsq"])
def test_ssi_loss_is_invariant_to_positive_scale_and_shift_of_the_prediction(alignment):
    pred, target, mask = _maps()
    loss = SSIGradientLoss(alignment=alignment)
    base = loss(pred, target, mask).total
    moved = loss(3.7 * pred + 1.25, target, mask).total
    assert torch.allclose(base, moved, rtol=1e-9, atol=1e-10)
    assert base > 0.01


def test_median_ssi_loss_is_invariant_to_scale_and_shift_of_the_target():
    pred, target, mask = _maps()
    loss = SSIGradientLoss(alignment="median")
    assert torch.allclose(loss(pred, target, mask).total, loss(pred, 0.2 * target - 4.0, mask).total, rtol=1e-9)


@pytest.mark.parametrize("alignment", ["median", "lstsq"])
def test_ssi_loss_is_zero_for_affinely_related_maps(alignment):
    _, target, mask = _maps()
    out = SSIGradientLoss(alignment=alignment)(2.0 * target + 0.3, target, mask)
    assert out.total.abs() < 1e-10
    assert out.parts["ssi"] < 1e-10 and out.parts["gm"] < 1e-10


def test_least_squares_alignment_recovers_scale_and_shift_under_the_mask_only():
    _, target, mask = _maps()
    pred = (target - 0.5) / 4.0
    pred_outside = pred.masked_fill(~mask, 1e6)  # values outside the mask must not matter
    aligned = align_least_squares(pred_outside, target, mask)
    assert torch.allclose(aligned[mask], target[mask], atol=1e-9)


def test_median_normalisation_gives_zero_median_and_unit_mean_absolute_deviation():
    pred, _, mask = _maps(b=1, h=15, w=15)
    out = normalize_median(pred, mask)[0][mask[0]]
    assert out.median().abs() < 1e-12
    assert torch.isclose((out - out.median()).abs().mean(), torch.tensor(1.0, dtype=out.dtype))


def test_masked_out_pixels_do_not_change_the_loss():
    pred, target, mask = _maps()
    loss = SSIGradientLoss()
    garbage = pred.masked_fill(~mask, 123.0), target.masked_fill(~mask, -9.0)
    assert torch.allclose(loss(pred, target, mask).total, loss(*garbage, mask).total)


def test_trim_drops_exactly_the_largest_tenth_of_valid_pixels():
    per_pixel = torch.arange(100, dtype=torch.float64).reshape(1, 10, 10)
    mask = torch.ones(1, 10, 10, dtype=torch.bool)
    mask[0, 9] = False  # the largest row is invalid: 90 valid pixels, drop 9
    kept = trim_mask(per_pixel, mask, 0.1)
    assert int(kept.sum()) == 81
    assert per_pixel[kept].max() == 80.0


def test_trimming_drops_the_corrupted_tenth_of_a_pseudo_label():
    _, target, _ = _maps(b=1, h=20, w=20)
    mask = torch.ones_like(target, dtype=torch.bool)
    corrupted = target.clone()
    corrupted[0, :2] = 50.0  # 10 % of the pixels wildly wrong
    loss = SSIGradientLoss(alignment="median", trim=0.1)
    p, g = loss.aligned(2 * target + 1, corrupted, mask)
    kept = trim_mask((p - g).abs(), mask, 0.1)
    assert not kept[0, :2].any() and kept[0, 2:].all()


def test_gradient_matching_counts_an_error_edge_at_every_scale():
    residual = torch.zeros(1, 8, 8, dtype=torch.float64)
    residual[0, :, 4:] = 1.0  # a vertical edge in the error map
    mask = torch.ones(1, 8, 8, dtype=torch.bool)
    # scale 0: one unit step per row, 8 over 7*8 + 7*8 = 112 neighbour pairs; scale 1 (4x4 grid):
    # 4 over 12 + 12 pairs; scale 2 (2x2 grid): 2 over 2 + 2; scale 3 is a single pixel.
    expected = 8 / 112 + 4 / 24 + 2 / 4
    assert math.isclose(float(gradient_matching(residual, mask, scales=4)), expected, rel_tol=1e-12)


def test_silog_is_zero_for_identical_maps_and_invariant_to_scale_when_lambda_is_one():
    _, target, mask = _maps()
    assert float(silog(target, target, mask)) == 0.0
    pred = target * torch.exp(0.1 * torch.randn_like(target))
    assert math.isclose(
        float(silog(3.0 * pred, target, mask, lam=1.0)), float(silog(pred, target, mask, lam=1.0)), rel_tol=1e-9
    )
    assert float(silog(3.0 * pred, target, mask, lam=0.5)) > float(silog(pred, target, mask, lam=0.5))


def test_silog_matches_its_definition():
    pred, target, mask = _maps()
    d = torch.log(target[mask]) - torch.log(pred[mask])
    expected = torch.sqrt((d**2).mean() - 0.5 * d.mean() ** 2)
    assert torch.isclose(SiLogLoss()(pred, target, mask).total, expected)


def test_empty_masks_give_a_zero_loss_not_nan():
    pred, target, _ = _maps()
    empty = torch.zeros_like(pred, dtype=torch.bool)
    for loss in (SSIGradientLoss(), SSIGradientLoss(alignment="lstsq", trim=0.1), SiLogLoss()):
        value = loss(pred.requires_grad_(), target, empty).total
        assert float(value.detach()) == 0.0
        value.backward()
        assert torch.isfinite(pred.grad).all()
        pred.grad = None


@pytest.mark.parametrize(
    "loss",
    [
        SSIGradientLoss(alignment="median"),
        SSIGradientLoss(alignment="lstsq"),
        SSIGradientLoss(alignment="median", trim=0.1),
        SiLogLoss(),
    ],
    ids=["ssi-median+gm", "ssi-lstsq+gm", "trimmed", "silog"],
)
def test_loss_gradients_match_finite_differences_in_float64(loss):
    pred, target, mask = _maps(b=2, h=6, w=7, seed=3)
    pred.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: loss(p, target, mask).total, (pred,), eps=1e-6, atol=1e-5)
