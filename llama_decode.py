"""llama_decode.py: one decode step of a Llama-architecture model, written out in
plain torch for the HF engine's continuous batch (engines.Decoder).

Not a part of the paper: machinery that makes the CPU runs fast (App. H's concern,
on our hardware). A decode step of the classroom world's 1M-parameter model is a
few MFLOP; through transformers' forward, the Python around that arithmetic
(output capturing, mask building, module hooks, keyword plumbing) took more
time than the arithmetic in our profile of the classroom demo
(docs/performance.md). This file runs the same arithmetic on the same weights
for one new token per row, with the cache of engines.SlackLayer, and nothing else.

Paper map
  App. H     the cost of sampling, the bulk of a training step            decode_step()
  (ours)     the engine's decode path for plain Llama models               supports()

What it computes is LlamaForCausalLM's forward for a single position (the
transformers Llama model): per layer, x += o(attn(rope(q(n1(x))), rope(k), v))
and x += down(silu(gate(n2(x))) * up(n2(x))), then logits = lm_head(norm(x)),
with RMSNorm, rotary embeddings (the model's own rotary module), grouped-query
attention over the row's cached keys and a mask for its left padding.

Symbols (B rows, T cached columns with the new one, D hidden, H heads, Hkv key/value heads, d = D / H)
  tokens     -> (B,) the token each row sampled last
  mask       -> (B, T) 1 on a row's real columns, 0 on its left padding
  positions  -> (B, 1) each row's position: its real columns before the new one
  x          -> (B, 1, D) the residual stream of the new token
  q, k, v    -> (B, H or Hkv, 1, d)

Deviations and choices
  * Only plain Llama: the model must be a LlamaForCausalLM (not wrapped in a
    LoRA adapter) with default rotary embeddings and no biases (`supports`);
    anything else decodes through transformers' forward (engines.Decoder).
    The classroom world's model and the bundled SmolLM2-135M qualify; a LoRA
    policy (SmolLM2's demo) does not.
  * Float rounding: the operations are transformers' own for RMSNorm, the
    rotary embedding and the projections, but the attention call differs
    (grouped heads and the padding mask handed to scaled_dot_product_attention
    directly), so the logits are not guaranteed bit for bit transformers'.
    On the classroom model they were (the demo drew the same tokens in all 100
    steps); the test allows 1e-5 (tests/test_thought_mdp.py). Where they differ,
    a near-tie may sample another token.

Run it
  python thought_mdp.py --benchmark     # the engine decodes through this file where supported
"""

import torch
import torch.nn.functional as F


def supports(model):
    """Whether `model` is a plain Llama this file decodes exactly."""
    from transformers import LlamaForCausalLM

    config = getattr(model, "config", None)
    rope = getattr(config, "rope_parameters", None) or {}
    return (
        type(model) is LlamaForCausalLM
        and not getattr(config, "attention_bias", False)
        and not getattr(config, "mlp_bias", False)
        and getattr(config, "hidden_act", "silu") == "silu"
        and rope.get("rope_type", "default") == "default"
        and getattr(config, "pretraining_tp", 1) == 1
    )


def rms_norm(x, norm):
    """transformers' LlamaRMSNorm, inline: x / sqrt(mean(x^2) + eps) * weight, in float32."""
    dtype = x.dtype
    x = x.to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * x.to(dtype)


def rope(x, cos, sin):
    """Rotary embedding of (B, heads, 1, d) with cos, sin (B, 1, 1, d): x cos + rotate_half(x) sin."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), -1) * sin


@torch.no_grad()
def decode_step(model, tokens, mask, cache):
    """Logits (B, V) of the next token of every row, after appending `tokens` (B,) to
    `cache` (a DynamicCache whose layers are engines.SlackLayer); `mask` (B, T) covers
    the cached columns and the new one."""
    inner, config = model.model, model.config
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    d = getattr(config, "head_dim", None) or config.hidden_size // heads
    B = tokens.shape[0]
    x = inner.embed_tokens(tokens[:, None])  # (B, 1, D)
    positions = mask.sum(-1, keepdim=True) - 1  # (B, 1)
    cos, sin = inner.rotary_emb(x, positions)  # (B, 1, d) each
    cos, sin = cos[:, None], sin[:, None]  # (B, 1, 1, d)
    attend = mask.bool()[:, None, None, :]  # (B, 1, 1, T)
    for layer, slot in zip(inner.layers, cache.layers):
        attn, mlp = layer.self_attn, layer.mlp
        h = rms_norm(x, layer.input_layernorm)
        q = F.linear(h, attn.q_proj.weight).view(B, 1, heads, d).transpose(1, 2)  # (B, H, 1, d)
        k = F.linear(h, attn.k_proj.weight).view(B, 1, kv_heads, d).transpose(1, 2)  # (B, Hkv, 1, d)
        v = F.linear(h, attn.v_proj.weight).view(B, 1, kv_heads, d).transpose(1, 2)
        keys, values = slot.update(rope(k, cos, sin), v)  # (B, Hkv, T, d)
        out = F.scaled_dot_product_attention(
            rope(q, cos, sin),
            keys,
            values,
            attn_mask=attend,
            scale=attn.scaling,
            enable_gqa=heads != kv_heads,
        )  # (B, H, 1, d)
        x = x + F.linear(out.transpose(1, 2).reshape(B, 1, heads * d), attn.o_proj.weight)
        h = rms_norm(x, layer.post_attention_layernorm)
        x = x + F.linear(
            F.silu(F.linear(h, mlp.gate_proj.weight)) * F.linear(h, mlp.up_proj.weight), mlp.down_proj.weight
        )
    return F.linear(rms_norm(x, inner.norm), model.lm_head.weight)[:, -1]  # (B, V)
