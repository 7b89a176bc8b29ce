"""Shared test set-up: no network, no user weights directory, small thread counts."""

from __future__ import annotations

import os

# Before huggingface_hub is imported anywhere: tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("DA2K_WEIGHTS_DIR", None)

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DA2K_WEIGHTS_DIR", raising=False)
