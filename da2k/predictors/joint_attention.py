"""GeoWizard's joint depth–normal self-attention as a diffusers attention processor.

In GeoWizard every transformer block's self-attention (`attn1`) sees a batch made of two halves,
the depth and the normal branch of the same images. The keys and values of both halves are
concatenated along the token axis and shared: each query attends to its own branch's tokens and
to the other branch's. The official code has this only as an xformers processor (and silently
falls back to plain per-branch attention without xformers); here it is
`torch.nn.functional.scaled_dot_product_attention`, which computes the same softmax(q kᵀ/√d) v.
"""

from __future__ import annotations

from typing import Any


class JointAttnProcessor:
    """Processor for `attn1` of GeoWizard's UNet. The batch must be [depth half, normal half] with
    the halves in the same image order (GeoWizard runs one pair per image)."""

    def __call__(
        self,
        attn: Any,
        hidden_states: Any,
        encoder_hidden_states: Any = None,
        attention_mask: Any = None,
        temb: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        import torch
        import torch.nn.functional as F

        if attention_mask is not None or encoder_hidden_states is not None or hidden_states.ndim != 3:
            raise ValueError("joint attention is self-attention on (batch, tokens, channels) without a mask")
        batch, tokens, _ = hidden_states.shape
        if batch % 2:
            raise ValueError(f"joint attention needs a batch of (depth, normal) halves, got {batch}")
        residual = hidden_states
        query = attn.to_q(hidden_states)
        key, value = attn.to_k(hidden_states), attn.to_v(hidden_states)
        # [k_depth ⊕ k_normal] along tokens, the same for both halves
        key = torch.cat(key.chunk(2, dim=0), dim=1).repeat(2, 1, 1)
        value = torch.cat(value.chunk(2, dim=0), dim=1).repeat(2, 1, 1)
        heads = attn.heads
        q, k, v = (x.reshape(batch, x.shape[1], heads, -1).transpose(1, 2) for x in (query, key, value))
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head dim), as xformers' default
        out = out.transpose(1, 2).reshape(batch, tokens, -1).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def install_joint_attention(unet: Any) -> int:
    """Put `JointAttnProcessor` on every `attn1` of `unet` (other attentions keep theirs); returns
    how many were set."""
    processors = {}
    joint = 0
    for name, processor in unet.attn_processors.items():
        if name.endswith("attn1.processor"):
            processors[name] = JointAttnProcessor()
            joint += 1
        else:
            processors[name] = processor
    unet.set_attn_processor(processors)
    return joint
