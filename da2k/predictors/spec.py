"""The one predictor spec grammar, shared by `--model` (evaluate) and `--expert` (mine).

    SPEC[;key=value...]

SPEC is a model name (vits, vitl, v1-vitl, metric-*, vit-tiny: ours) or `PREFIX:REST`
(`precomputed:DIR`, `hf:REPO`, `marigold:REPO`, `depthfm:CKPT`, `geowizard:REPO`,
`python:MODULE:FUNCTION`). Options after `;` are
fields of `PredictorOptions` (`vit-tiny;weights=w.pt`, `precomputed:maps/;kind=depth`,
`marigold:prs-eth/marigold-depth-v1-1;steps=4;ensemble_size=2`); in a spec they override the
command's flags. An option that the chosen predictor does not use is an error, never ignored.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, replace
from typing import Any, Callable

from da2k.errors import Da2kError
from da2k.predictors.base import Predictor


@dataclass
class PredictorOptions:
    """Everything `--model SPEC` may need besides the spec itself."""

    weights: str | None = None
    kind: str | None = None
    input_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    ensemble_size: int | None = None
    steps: int | None = None
    vae: str | None = None
    domain: str | None = None
    compile: bool = False


def _field_types() -> dict[str, type]:
    hints = typing.get_type_hints(PredictorOptions)
    types = {}
    for f in dataclasses.fields(PredictorOptions):
        args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)] or [hints[f.name]]
        types[f.name] = args[0]
    return types


def parse_spec(text: str) -> tuple[str, dict[str, Any]]:
    """`SPEC[;key=value...]` -> (spec, typed options), e.g. `vit-tiny;weights=/w/tiny.pt`."""
    spec, *extras = text.split(";")
    types = _field_types()
    options: dict[str, Any] = {}
    for extra in extras:
        if not extra.strip():
            continue
        key, sep, value = (part.strip() for part in extra.partition("="))
        if not sep or key not in types:
            raise Da2kError(
                f"bad option {extra.strip()!r} in {text!r}: write SPEC;key=value with key one of {', '.join(types)}"
            )
        if key in options:
            raise Da2kError(f"option {key} is given twice in {text!r}")
        try:
            options[key] = types[key](value)
        except ValueError:
            raise Da2kError(f"option {key} in {text!r} must be {types[key].__name__}, got {value!r}") from None
    if not spec.strip():
        raise Da2kError(f"empty model spec in {text!r}")
    return spec.strip(), options


# prefix -> (builder(rest, options), the PredictorOptions fields it uses besides device/precision, usage)
Builder = Callable[[str, PredictorOptions], Predictor]
_PREFIXES: dict[str, tuple[Builder, tuple[str, ...], str]] = {}


def register_prefix(prefix: str, uses: tuple[str, ...], usage: str) -> Callable[[Builder], Builder]:
    """Declare the predictor family behind `prefix:`, the options it uses and how to write it
    (`usage`, e.g. `hf:REPO`)."""

    def decorate(builder: Builder) -> Builder:
        _PREFIXES[prefix] = (builder, uses, usage)
        return builder

    return decorate


def spec_prefixes() -> tuple[str, ...]:
    return tuple(_PREFIXES)


def takes_option(spec: str, option: str) -> bool:
    """Whether the family `spec` names uses `option` (`takes_option("vitl", "compile")`)."""
    from da2k.predictors import families  # noqa: F401  (registers the prefixes)

    prefix, sep, _ = parse_spec(spec)[0].partition(":")
    entry = _PREFIXES.get(prefix if sep else "")
    return entry is not None and option in entry[1]


def make_predictor(spec: str, options: PredictorOptions | None = None, **overrides: Any) -> Predictor:
    """The predictor named by `spec` (see the module docstring); options as a `PredictorOptions`
    and/or keywords (`make_predictor("vits", weights="w.pth", device="cpu")`); options written in
    the spec itself win over both."""
    from da2k.predictors import families  # noqa: F401  (registers the prefixes)

    name, in_spec = parse_spec(spec)
    o = replace(options or PredictorOptions(), **overrides, **in_spec)
    prefix, sep, rest = name.partition(":")
    if not sep:
        prefix, rest = "", name
    elif not rest:
        raise Da2kError(f"--model {name}: nothing after '{prefix}:'")
    if prefix not in _PREFIXES:
        raise Da2kError(
            f"unknown --model prefix {prefix!r}; use a model name (vits, vitl, ...) or "
            + ", ".join(usage for p, (_, _, usage) in _PREFIXES.items() if p)
        )
    builder, uses, _ = _PREFIXES[prefix]
    if o.compile and "compile" not in uses:
        raise Da2kError(f"--compile is for our networks (vits, vitl, ...); {name} cannot be compiled")
    unused = sorted(set(in_spec) - set(uses) - {"device", "precision"})
    if unused:
        raise Da2kError(
            f"{name}: option(s) {', '.join(unused)} do not apply to this model (it takes: {', '.join(uses)})"
        )
    return builder(rest, o)
