"""Which weights a row measured: official (from the model's hub repo) or custom.

A measured row counts as an official model, and joins that model's reported rows, only when
its checkpoint came from the official hub repo (`model.checkpoint_source` says
`hub:<repo>@<revision>/...`) or its sha256 equals that of a checkpoint recorded from such a
download among the results being shown. Anything else, a random or fine-tuned file under an
official id included, is "<architecture> · custom weights (sha 1a2b3c4d)".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from da2k.leaderboard.names import architecture_name, display_name, group_of, official_repo
from da2k.leaderboard.redact import redact

OfficialHashes = frozenset  # of (group, checkpoint sha256) pairs seen downloaded from the official repo


@dataclass(frozen=True)
class Identity:
    """label: the row's name unless the run names itself; weights: which model and weights
    ("<architecture> · custom weights (sha 1a2b3c4d)"); group: rows of one official model
    share it; card: the official hub repo."""

    label: str
    weights: str
    official: bool
    group: str
    card: str | None = None


def hub_repo_of(source: str | None) -> str | None:
    """The repo of a `hub:<repo>[@<revision>][/<file>]` checkpoint source, else None."""
    if not source or not source.startswith("hub:"):
        return None
    rest = source[4:]
    if "@" in rest:
        return rest.split("@", 1)[0]
    return "/".join(rest.split("/")[:2])


def from_official_repo(model: dict) -> bool:
    """True when the checkpoint was resolved from the model id's official hub repo."""
    repo = official_repo(str(model["id"]))
    return repo is not None and hub_repo_of(model.get("checkpoint_source")) == repo


def official_hashes(models: list[dict]) -> OfficialHashes:
    """(group, sha256) of every measured checkpoint downloaded from its official repo."""
    return frozenset(
        (group_of(str(m["id"])), m["checkpoint_sha256"])
        for m in models
        if m.get("checkpoint_sha256") and from_official_repo(m)
    )


def _short(sha: str | None) -> str:
    return f"sha {sha[:8]}" if sha else "sha not recorded"


def identify_measured(model: dict, known: OfficialHashes = frozenset(), fallback: str = "") -> Identity:
    """The identity of a measured row from its result's `model` block.

    `known`: official checkpoints recorded by other results; `fallback`: a stable text that
    tells apart rows with no checkpoint hash (their group must not merge them)."""
    model_id = str(model["id"])
    sha = model.get("checkpoint_sha256")
    source = model.get("checkpoint_source")
    group = group_of(model_id)
    architecture = architecture_name(model_id)
    downloaded = from_official_repo(model)
    if downloaded or (sha and (group, sha) in known):
        repo = official_repo(model_id)
        revision = str(source).partition("@")[2].split("/")[0][:8] if downloaded else ""
        how = f"hub, revision {revision}" if revision else "hub" if downloaded else "same sha256 as a hub download"
        label = display_name(model_id)
        return Identity(label, f"{label} · official weights ({how})", True, group, repo)
    key = sha or hashlib.sha256(fallback.encode()).hexdigest()
    if architecture is not None:
        label = f"{architecture} · custom weights ({_short(sha)})"
        return Identity(label, label, False, f"custom:{model_id}:{key}")
    shown = redact(model_id)
    return Identity(shown, f"{shown} · {_short(sha)}", False, f"{shown}:{key}")


@lru_cache(maxsize=None)
def counted_params(model_id: str) -> int | None:
    """Parameters of the architecture a model id builds (ours only), counted without allocating
    any weights; None for other models."""
    if architecture_name(model_id) is None:
        return None
    import torch

    from da2k.models import build_model

    with torch.device("meta"):
        model = build_model(group_of(model_id))
    return sum(p.numel() for p in model.parameters())
