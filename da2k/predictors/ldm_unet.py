"""The original Stable Diffusion code base's UNet (`ldm`'s `UNetModel`, as copied in DepthFM) expressed
as `diffusers.UNet2DConditionModel`: its config from the ldm hyper-parameters and a pure key remap.

Pure functions on dicts (no diffusers import here). The remap is total: every ldm key is renamed
exactly once, and a key that no rule claims is an error, so strict loading of the result into
the model built from `diffusers_unet_config` proves the two hold the same parameters.
"""

from __future__ import annotations

from typing import Any, Mapping

from da2k.errors import Da2kError

# ldm UNetModel arguments that do not change the function at inference, or only its memory use.
_NO_EFFECT = {
    "image_size",
    "dropout",
    "use_checkpoint",
    "use_fp16",
    "use_bf16",
    "legacy",  # with the spatial transformer, head sizes come out the same either way
    "num_heads_upsample",  # only used by the non-transformer AttentionBlock
    "use_new_attention_order",  # ditto
    "load_from_ckpt",
}
_USED = {
    "in_channels",
    "model_channels",
    "out_channels",
    "num_res_blocks",
    "attention_resolutions",
    "channel_mult",
    "num_heads",
    "num_head_channels",
    "use_spatial_transformer",
    "transformer_depth",
    "context_dim",
    "use_linear_in_transformer",
    "use_scale_shift_norm",
}
# argument -> the value that diffusers' UNet2DConditionModel can express
_FIXED = {
    "conv_resample": True,
    "dims": 2,
    "num_classes": None,
    "resblock_updown": False,
    "n_embed": None,
    "disable_self_attentions": None,
    "num_attention_blocks": None,
    "disable_middle_self_attn": False,
    "adm_in_channels": None,
}
_RESNET = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}
_TOP = {
    "time_embed.0": "time_embedding.linear_1",
    "time_embed.2": "time_embedding.linear_2",
    "input_blocks.0.0": "conv_in",
    "out.0": "conv_norm_out",
    "out.2": "conv_out",
}


def _plain(value: Any) -> Any:
    """Lists/tuples (or omegaconf containers converted before) as plain lists of plain values."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _levels(hp: Mapping[str, Any]) -> tuple[list[int], list[int], list[bool]]:
    """Per level: output channels, res blocks, whether it has a spatial transformer."""
    mc = int(hp["model_channels"])
    mult = [int(m) for m in _plain(hp.get("channel_mult", (1, 2, 4, 8)))]
    nrb = _plain(hp["num_res_blocks"])
    nrb = [int(nrb)] * len(mult) if isinstance(nrb, int) else [int(n) for n in nrb]
    if len(nrb) != len(mult):
        raise Da2kError(f"ldm_hparams: num_res_blocks {nrb} does not match channel_mult {mult}")
    resolutions = {int(r) for r in _plain(hp["attention_resolutions"])}
    return [mc * m for m in mult], nrb, [2**level in resolutions for level in range(len(mult))]


def check_hparams(hp: Mapping[str, Any]) -> None:
    """Refuse ldm UNet arguments that diffusers' UNet2DConditionModel cannot express (or unknown ones)."""
    unknown = sorted(set(hp) - _NO_EFFECT - _USED - set(_FIXED))
    if unknown:
        raise Da2kError(f"ldm_hparams: unknown UNetModel argument(s) {', '.join(unknown)}")
    for key, value in _FIXED.items():
        if key in hp and _plain(hp[key]) != value:
            raise Da2kError(f"ldm_hparams: {key}={hp[key]!r} is not supported (only {value!r})")
    if not hp.get("use_spatial_transformer", False):
        raise Da2kError("ldm_hparams: a UNet without the spatial transformer (cross-attention) is not DepthFM's")


def _context_dim(hp: Mapping[str, Any]) -> int:
    ctx = _plain(hp.get("context_dim"))
    dims = set(ctx) if isinstance(ctx, list) else {ctx}
    if len(dims) != 1 or None in dims:
        raise Da2kError(f"ldm_hparams: context_dim must be one number, got {ctx!r}")
    return int(dims.pop())


def diffusers_unet_config(hp: Mapping[str, Any]) -> dict[str, Any]:
    """`UNet2DConditionModel(**config)` computing the ldm `UNetModel(**hp)` forward (x ⊕ context on
    channels, cross-attention on `context_ca`, sinusoidal embedding of t with cos first)."""
    check_hparams(hp)
    channels, nrb, attn = _levels(hp)
    head_channels = int(hp.get("num_head_channels", -1))
    if head_channels == -1:
        heads = [int(hp["num_heads"])] * len(channels)
    else:
        if any(ch % head_channels for ch in channels):
            raise Da2kError(f"ldm_hparams: channels {channels} are not multiples of num_head_channels {head_channels}")
        heads = [ch // head_channels for ch in channels]
    return {
        "in_channels": int(hp["in_channels"]),
        "out_channels": int(hp["out_channels"]),
        "block_out_channels": channels,
        "layers_per_block": nrb,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)],
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "cross_attention_dim": _context_dim(hp),
        # diffusers' historical name: this is the number of heads per level
        "attention_head_dim": heads,
        "transformer_layers_per_block": int(hp.get("transformer_depth", 1)),
        "use_linear_projection": bool(hp.get("use_linear_in_transformer", False)),
        "resnet_time_scale_shift": "scale_shift" if hp.get("use_scale_shift_norm", False) else "default",
        "norm_num_groups": 32,  # ldm's normalization() is GroupNorm(32, ...)
        "norm_eps": 1e-5,
        "flip_sin_to_cos": True,  # ldm's timestep_embedding puts cos first
        "freq_shift": 0,
        "downsample_padding": 1,
    }


def _module_map(hp: Mapping[str, Any]) -> dict[str, tuple[str, Mapping[str, str] | None]]:
    """ldm module prefix -> (diffusers prefix, rename of the sub-keys or None: same names)."""
    channels, nrb, attn = _levels(hp)
    out: dict[str, tuple[str, Mapping[str, str] | None]] = {k: (v, None) for k, v in _TOP.items()}
    i = 1
    for level in range(len(channels)):
        for j in range(nrb[level]):
            out[f"input_blocks.{i}.0"] = (f"down_blocks.{level}.resnets.{j}", _RESNET)
            if attn[level]:
                out[f"input_blocks.{i}.1"] = (f"down_blocks.{level}.attentions.{j}", None)
            i += 1
        if level != len(channels) - 1:
            out[f"input_blocks.{i}.0.op"] = (f"down_blocks.{level}.downsamplers.0.conv", None)
            i += 1
    out["middle_block.0"] = ("mid_block.resnets.0", _RESNET)
    out["middle_block.1"] = ("mid_block.attentions.0", None)
    out["middle_block.2"] = ("mid_block.resnets.1", _RESNET)
    k = 0
    for up, level in enumerate(reversed(range(len(channels)))):
        for j in range(nrb[level] + 1):
            out[f"output_blocks.{k}.0"] = (f"up_blocks.{up}.resnets.{j}", _RESNET)
            slot = 1
            if attn[level]:
                out[f"output_blocks.{k}.1"] = (f"up_blocks.{up}.attentions.{j}", None)
                slot = 2
            if level and j == nrb[level]:
                out[f"output_blocks.{k}.{slot}.conv"] = (f"up_blocks.{up}.upsamplers.0.conv", None)
            k += 1
    return out


def _rename(key: str, modules: Mapping[str, tuple[str, Mapping[str, str] | None]]) -> str | None:
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # the longest module prefix first
        prefix = ".".join(parts[:cut])
        if prefix not in modules:
            continue
        target, renames = modules[prefix]
        rest = ".".join(parts[cut:])
        if renames is None:
            return f"{target}.{rest}"
        head, _, tail = rest.rpartition(".")
        return f"{target}.{renames[head]}.{tail}" if head in renames else None
    return None


def ldm_to_diffusers(state: Mapping[str, Any], hp: Mapping[str, Any]) -> dict[str, Any]:
    """Rename an ldm `UNetModel` state dict to `UNet2DConditionModel` keys (values untouched).
    Raises `Da2kError` naming the first keys that no rule claims."""
    modules = _module_map(hp)
    out: dict[str, Any] = {}
    unclaimed = []
    for key, value in state.items():
        new = _rename(key, modules)
        if new is None or new in out:
            unclaimed.append(key)
        else:
            out[new] = value
    if unclaimed:
        raise Da2kError(f"DepthFM state_dict: {len(unclaimed)} key(s) fit no ldm UNet module, e.g. {unclaimed[:3]}")
    return out
