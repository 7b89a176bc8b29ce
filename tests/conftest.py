"""Shared test set-up: no network, no user weights directory, small thread counts."""

from __future__ import annotations

import os
from pathlib import Path

# Before huggingface_hub is imported anywhere: tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("DA2K_WEIGHTS_DIR", None)

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DA2K_WEIGHTS_DIR", raising=False)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A vit-tiny checkpoint (random init, seed 0) saved from build_model: a real, fast network."""
    from da2k.models import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "vit_tiny.pth"
    torch.save(build_model("vit-tiny").state_dict(), path)
    return path
