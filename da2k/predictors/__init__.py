"""Predictors: anything that turns an image into a depth or disparity map, with its conventions.

Specs accepted by `make_predictor` (the `--model` of `da2k evaluate`, the `--expert` of `da2k mine`;
options follow `;`, see `da2k.predictors.spec`):

    vits | vitb | vitl | vitg | v1-* | metric-* | vit-tiny   ours (da2k.models), weights=
    precomputed:DIR           DIR/<image key with .npy or .png>, any resolution, kind= required
    hf:REPO                   a transformers depth-estimation model (pip install 'da2k[hf]')
    marigold:REPO             diffusers MarigoldDepthPipeline (pip install 'da2k[marigold]')
    depthfm:CKPT              DepthFM, the official checkpoint (pip install 'da2k[depthfm]'), vae=
    geowizard:REPO            GeoWizard V1, hub id or local folder (pip install 'da2k[geowizard]'), domain=
    python:MODULE:FUNCTION    any callable image -> (map, kind[, align_corners])
"""

from da2k.predictors.base import ImageLoader, Prediction, Predictor, as_map, check_kind, folder_weights_sha256
from da2k.predictors.hf import HFPredictor
from da2k.predictors.marigold import MarigoldPredictor
from da2k.predictors.ours import DepthAnythingPredictor
from da2k.predictors.precomputed import PrecomputedPredictor
from da2k.predictors.python import PythonPredictor
from da2k.predictors.spec import PredictorOptions, make_predictor, parse_spec, takes_option

__all__ = [
    "DepthAnythingPredictor",
    "HFPredictor",
    "MarigoldPredictor",
    "PrecomputedPredictor",
    "PythonPredictor",
    "ImageLoader",
    "Prediction",
    "Predictor",
    "PredictorOptions",
    "as_map",
    "check_kind",
    "folder_weights_sha256",
    "make_predictor",
    "takes_option",
    "parse_spec",
]
