"""Display names and groups of models on the leaderboard (the paper's names for our variants)."""

from __future__ import annotations

# Paper model names that are exactly one of our variants (the released V2 students).
PAPER_MODEL_IDS = {
    "Depth Anything V2 ViT-S": "vits",
    "Depth Anything V2 ViT-B": "vitb",
    "Depth Anything V2 ViT-L": "vitl",
    "Depth Anything V2 ViT-G": "vitg",
}

# Other predictor specs for the same checkpoints: their rows sit next to the paper's row.
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


def group_of(model_id: str) -> str:
    """The key that keeps measured and reported rows of one model together."""
    return ALIASES.get(model_id, model_id)


def display_name(model_id: str) -> str:
    """The paper's name for one of our variants (or an alias of one), else the id itself."""
    names = {v: k for k, v in PAPER_MODEL_IDS.items()}
    return names.get(group_of(model_id), model_id)


def scenario_label(key: str) -> str:
    """Display name of a scenario key (DA-2K's eight, or a custom benchmark's folder name)."""
    return SCENARIO_LABELS.get(key, key.replace("_", " ").capitalize())
