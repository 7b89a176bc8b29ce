"""Display names of models and scenarios on the leaderboard, and the official hub repos.

Our variants carry the paper's names ("Depth Anything V2 ViT-S"); the official weights of a
variant are the ones in its hub repo (the registry's `hub_repo`), and the transformers ports
of the V2 students live in their own official repos.
"""

from __future__ import annotations

from da2k.models import VARIANTS

_ENCODER_NAMES = {"vits": "ViT-S", "vitb": "ViT-B", "vitl": "ViT-L", "vitg": "ViT-G"}

# Paper model names that are exactly one of our variants (the released V2 students, and V1 by size).
PAPER_MODEL_IDS = {
    **{f"Depth Anything V2 {label}": enc for enc, label in _ENCODER_NAMES.items()},
    **{f"Depth Anything V1 {label}": f"v1-{enc}" for enc, label in _ENCODER_NAMES.items() if enc != "vitg"},
}

# The official transformers ports of the V2 students: the same weights as our variant.
ALIASES = {
    "hf:depth-anything/Depth-Anything-V2-Small-hf": "vits",
    "hf:depth-anything/Depth-Anything-V2-Base-hf": "vitb",
    "hf:depth-anything/Depth-Anything-V2-Large-hf": "vitl",
}

SCENARIO_LABELS = {
    "indoor": "Indoor",
    "outdoor": "Outdoor",
    "non_real": "Non-real",
    "transparent_reflective": "Transparent/Reflective",
    "adverse_style": "Adverse style",
    "aerial": "Aerial",
    "underwater": "Underwater",
    "object": "Object",
}


def official_repo(model_id: str) -> str | None:
    """The hub repo whose files are this model id's official weights (None: no released weights)."""
    if model_id in ALIASES:
        return model_id.removeprefix("hf:")
    variant = VARIANTS.get(model_id)
    return variant.hub_repo if variant is not None else None


def group_of(model_id: str) -> str:
    """The key that keeps measured and reported rows of one official model together."""
    return ALIASES.get(model_id, model_id)


def architecture_name(model_id: str) -> str | None:
    """A readable name of the network a model id builds (ours or an official port), else None."""
    variant = VARIANTS.get(group_of(model_id))
    if variant is None:
        return None
    encoder = _ENCODER_NAMES.get(variant.encoder_name)
    if encoder is None:
        return f"{variant.name} (test architecture)"
    if variant.family == "v1":
        name = f"Depth Anything V1 {encoder}"
    elif variant.family == "metric":
        dataset = variant.name.split("-")[1]
        name = f"Depth Anything V2 Metric-{'Hypersim' if dataset == 'hypersim' else 'VKITTI'} {encoder}"
    else:
        name = f"Depth Anything V2 {encoder}"
    return f"{name} (transformers)" if model_id in ALIASES else name


def display_name(model_id: str) -> str:
    """The paper's name for one of our variants (or an official port of one), else the id itself."""
    return architecture_name(model_id) or model_id


def scenario_label(key: str) -> str:
    """Display name of a scenario key (DA-2K's eight, or a custom benchmark's folder name)."""
    return SCENARIO_LABELS.get(key, key.replace("_", " ").capitalize())
