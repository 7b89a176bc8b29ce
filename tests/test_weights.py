"""Checkpoint resolution (path, folder, $DA2K_WEIGHTS_DIR, hub cache) and strict loading."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from da2k.models import ModelError, build_model, get_variant, load_pretrained, resolve_weights
from da2k.models.weights import remap_state_dict


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("vit-tiny")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save(model.state_dict(), path)
    return path, model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_weights_none_gives_architecture_only_without_touching_the_hub():
    model = build_model("vits")
    assert model.checkpoint is None and not model.training


def test_saved_state_dict_loads_back_strictly(tiny_checkpoint):
    path, model = tiny_checkpoint
    loaded = build_model("vit-tiny", weights=path)
    assert _same_weights(model, loaded) and loaded.checkpoint == path


def test_safetensors_and_wrapped_ddp_checkpoints_load(tiny_checkpoint, tmp_path):
    _, model = tiny_checkpoint
    st = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(st))
    assert _same_weights(model, build_model("vit-tiny", weights=st))
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}}, wrapped)
    assert _same_weights(model, build_model("vit-tiny", weights=wrapped))


def test_remap_leaves_official_names_alone():
    state = {"pretrained.cls_token": torch.zeros(1), "depth_head.x": torch.ones(1)}
    assert remap_state_dict(state) is state


def test_checkpoint_of_another_variant_is_rejected_with_the_first_difference(tiny_checkpoint):
    path, _ = tiny_checkpoint
    with pytest.raises(ModelError, match=r"is not a vits checkpoint: .*missing|wrong shape"):
        build_model("vits", weights=path)


def test_missing_key_is_an_error_not_a_silent_partial_load(tiny_checkpoint, tmp_path):
    _, model = tiny_checkpoint
    state = dict(model.state_dict())
    state.pop("pretrained.norm.bias")
    partial = tmp_path / "partial.pth"
    torch.save(state, partial)
    with pytest.raises(ModelError, match="1 missing .*pretrained.norm.bias"):
        build_model("vit-tiny", weights=partial)


def test_pickled_objects_are_refused(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"pretrained.cls_token": torch.zeros(1), "x": object()}, evil, _use_new_zipfile_serialization=True)
    with pytest.raises(ModelError, match="cannot read checkpoint"):
        build_model("vit-tiny", weights=evil)


def test_garbage_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read checkpoint"):
        build_model("vit-tiny", weights=bad)


def test_weights_folder_and_env_dir_find_the_official_file_name(tmp_path, monkeypatch):
    (tmp_path / "depth_anything_v2_vits.pth").write_bytes(b"x")
    assert resolve_weights("vits", tmp_path) == tmp_path / "depth_anything_v2_vits.pth"
    monkeypatch.setenv("DA2K_WEIGHTS_DIR", str(tmp_path))
    assert resolve_weights("vits") == tmp_path / "depth_anything_v2_vits.pth"
    (tmp_path / "depth_anything_vitl14.pth").write_bytes(b"x")  # V1 name from the official space
    assert resolve_weights("v1-vitl", tmp_path).name == "depth_anything_vitl14.pth"


def test_missing_weights_path_is_reported():
    with pytest.raises(ModelError, match="does not exist"):
        resolve_weights("vits", "/nonexistent/w.pth")


def test_giant_says_its_weights_are_unreleased():
    with pytest.raises(ModelError, match="ViT-G weights have not been released.*--weights"):
        resolve_weights("vitg")


def test_unknown_variant_lists_the_valid_names():
    with pytest.raises(ModelError, match="unknown model 'vitx'.*vits, vitb, vitl, vitg, v1-vits"):
        build_model("vitx")


def test_every_variant_with_public_weights_names_its_hub_file():
    for name in ("vits", "vitb", "vitl", "v1-vits", "metric-hypersim-vitl", "metric-vkitti-vits"):
        v = get_variant(name)
        assert v.hub_repo and v.filename
    assert get_variant("metric-vkitti-vitb").max_depth == 80.0
    assert get_variant("metric-hypersim-vitb").max_depth == 20.0


def _run(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True)


def test_hub_download_is_served_from_the_local_cache_offline(tiny_checkpoint, tmp_path):
    """A fake hub cache laid out as huggingface_hub writes it, read with HF_HUB_OFFLINE=1."""
    path, _ = tiny_checkpoint
    repo = tmp_path / "hub" / "models--depth-anything--Depth-Anything-V2-Small"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "depth_anything_v2_vits.pth").write_bytes(path.read_bytes())
    code = "from da2k.models import resolve_weights\nprint(resolve_weights('vits'))\n"
    done = _run(code, {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("snapshots/" + commit + "/depth_anything_v2_vits.pth")


def test_offline_without_weights_is_one_line_naming_file_repo_and_flags(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "da2k", "predict", str(tmp_path), "--model", "vitl", "--out", str(tmp_path / "o")],
        env={**os.environ, "HF_HUB_CACHE": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
    )
    # an empty folder: the image check comes first, so give it one image
    assert done.returncode != 0
    (tmp_path / "a.png").write_bytes(open(__file__.replace("test_weights.py", "fixtures/demo01.jpg"), "rb").read())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "da2k",
            "predict",
            str(tmp_path / "a.png"),
            "--model",
            "vitl",
            "--out",
            str(tmp_path / "o"),
        ],
        env={**os.environ, "HF_HUB_CACHE": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "depth_anything_v2_vitl.pth" in lines[0] and "depth-anything/Depth-Anything-V2-Large" in lines[0]
    assert "--weights" in lines[0] and "DA2K_WEIGHTS_DIR" in lines[0]


def test_load_pretrained_prefers_an_explicit_path(tiny_checkpoint):
    path, model = tiny_checkpoint
    assert _same_weights(model, load_pretrained("vit-tiny", path))
