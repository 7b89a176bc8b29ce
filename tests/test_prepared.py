"""The inference copies `infer_network` runs (models/prepared.py): same function as the module
in fp32, bf16 within a stated tolerance, chunked attention exact, rebuilt when weights change,
`--compile` compiling once per input size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from da2k.models import build_model, infer_network, resolve_precision
from da2k.models import prepared as prep
from da2k.models.parity import deterministic_state_dict
from da2k.models.vit import chunked_attention

BF16_TOLERANCE = 3e-2  # of the output's max |value|; measured ~1.5e-2 on vits at 518x784


@pytest.fixture(scope="module")
def vits():
    model = build_model("vits")
    model.load_state_dict(deterministic_state_dict(model), strict=True)
    return model


@pytest.fixture(scope="module")
def batch():
    return torch.randn(1, 3, 70, 98, generator=torch.Generator().manual_seed(0))


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("n", [1, 37, 128, 129])
def test_chunked_attention_equals_fused_attention(n):
    q, k, v = torch.randn(3, 2, 3, n, 16, generator=torch.Generator().manual_seed(n)).unbind(0)
    want = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
    for chunk in (1, 5, 128):
        torch.testing.assert_close(chunked_attention(q, k, v, chunk), want, rtol=1e-5, atol=1e-6)


def test_fp32_copy_computes_what_the_module_computes(vits, batch):
    with torch.no_grad():
        want = vits(batch)
    got = infer_network(vits, batch, "fp32")
    assert got.dtype == torch.float32
    assert _relative(got, want) < 1e-5


def test_bf16_copy_is_cast_once_and_stays_within_tolerance_of_fp32(vits, batch):
    fp32 = infer_network(vits, batch, "fp32")
    bf16 = infer_network(vits, batch, "bf16")
    assert bf16.dtype == torch.float32
    assert 0 < _relative(bf16, fp32) < BF16_TOLERANCE
    copy = prep.prepared(vits, resolve_precision("bf16", "cpu")).net
    assert {p.dtype for p in copy.parameters()} == {torch.bfloat16}
    assert all(b.folded for b in copy.pretrained.blocks)
    assert {p.dtype for p in vits.parameters()} == {torch.float32}  # the model itself is untouched
    assert not any(b.folded for b in vits.pretrained.blocks)


def test_bf16_uses_chunked_attention_only_where_it_is_faster(monkeypatch, vits):
    bf16 = resolve_precision("bf16", "cpu")
    monkeypatch.setattr(prep, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert prep.inference_copy(vits, bf16).pretrained.blocks[0].attn.query_chunk == prep.QUERY_CHUNK
    monkeypatch.setattr(prep, "cpu_flags", lambda: frozenset({"avx512_bf16", "amx_bf16"}))
    assert prep.inference_copy(vits, bf16).pretrained.blocks[0].attn.query_chunk is None
    assert prep.inference_copy(vits, resolve_precision("fp32", "cpu")).pretrained.blocks[0].attn.query_chunk is None


def test_the_copy_is_reused_and_rebuilt_when_the_weights_change(batch):
    torch.manual_seed(0)
    model = build_model("vit-tiny")
    fp32 = resolve_precision("fp32", "cpu")
    first = prep.prepared(model, fp32)
    assert prep.prepared(model, fp32) is first
    before = infer_network(model, batch[..., :56, :56])
    with torch.no_grad():
        model.pretrained.blocks[0].ls1.gamma.mul_(3.0)  # what an optimizer step does: in place
        want = model(batch[..., :56, :56])
    assert prep.prepared(model, fp32) is not first
    after = infer_network(model, batch[..., :56, :56])
    assert _relative(after, want) < 1e-5
    assert _relative(after, before) > 1e-4


def test_compile_builds_one_graph_per_input_size_and_never_recompiles_it(monkeypatch, batch):
    torch._dynamo.reset()
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
    torch.manual_seed(0)
    model = build_model("vit-tiny")
    x = batch[..., :56, :70]
    eager = infer_network(model, x)
    first = infer_network(model, x, compile=True)
    second = infer_network(model, x + 0.5, compile=True)  # same size, new values: same graph
    assert _relative(first, eager) < 1e-4
    assert _relative(second, infer_network(model, x + 0.5)) < 1e-4
    compiled = prep.prepared(model, resolve_precision("fp32", "cpu"), compile=True)
    assert compiled.shapes == {tuple(x.shape)}
    assert prep.compile_seconds(model) == compiled.compile_seconds > 0
