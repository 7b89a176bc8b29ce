"""Which spec prefix builds which predictor, and the options each one uses.

Imports of the optional packages (transformers, diffusers) happen inside the predictors, so
registering a family costs nothing."""

from __future__ import annotations

from da2k.predictors.spec import PredictorOptions, register_prefix


@register_prefix("", ("weights", "kind", "input_size", "compile"), "vits|vitb|vitl|vitg|v1-*|metric-*")
def _ours(name: str, o: PredictorOptions):
    from da2k.predictors.ours import DepthAnythingPredictor

    return DepthAnythingPredictor(name, o.weights, o.input_size, o.device, o.precision, kind=o.kind, compile=o.compile)


@register_prefix("precomputed", ("kind",), "precomputed:DIR")
def _precomputed(directory: str, o: PredictorOptions):
    from da2k.predictors.precomputed import PrecomputedPredictor

    return PrecomputedPredictor(directory, o.kind)


@register_prefix("hf", ("kind", "input_size"), "hf:REPO")
def _hf(repo: str, o: PredictorOptions):
    from da2k.predictors.hf import HFPredictor

    return HFPredictor(repo, o.kind, o.input_size, o.device, o.precision)


# What the diffusion predictors take alike: sampling options and where/how to run.
_SAMPLING = ("seed", "ensemble_size", "steps", "input_size")


def _sampling(o: PredictorOptions) -> dict:
    return {name: getattr(o, name) for name in (*_SAMPLING, "device", "precision")}


@register_prefix("marigold", _SAMPLING, "marigold:REPO")
def _marigold(repo: str, o: PredictorOptions):
    from da2k.predictors.marigold import MarigoldPredictor

    return MarigoldPredictor(repo, **{**_sampling(o), "ensemble_size": o.ensemble_size or 1})


@register_prefix("depthfm", ("vae", *_SAMPLING), "depthfm:CKPT")
def _depthfm(checkpoint: str, o: PredictorOptions):
    from da2k.predictors.depthfm import DepthFMPredictor

    return DepthFMPredictor(checkpoint, vae=o.vae, **_sampling(o))


@register_prefix("geowizard", ("domain", *_SAMPLING), "geowizard:REPO")
def _geowizard(repo: str, o: PredictorOptions):
    from da2k.predictors.geowizard import GeoWizardPredictor

    return GeoWizardPredictor(repo, domain=o.domain, **_sampling(o))


@register_prefix("python", ("kind",), "python:MODULE:FUNCTION")
def _python(target: str, o: PredictorOptions):
    from da2k.predictors.python import PythonPredictor

    return PythonPredictor(target, o.kind)
