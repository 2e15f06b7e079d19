"""llama_decode.py: one decode step of a Llama-architecture model, and the prefill of
its prompts, written out in plain torch for the HF engine's continuous batch
(engines.Decoder).

Not a part of the paper: machinery that makes the CPU runs fast (App. H's concern,
on our hardware). A decode step of the classroom world's 1M-parameter model is a
few MFLOP; through transformers' forward, the Python around that arithmetic
(output capturing, mask building, module hooks, keyword plumbing) took more
time than the arithmetic in our profile of the classroom demo
(docs/performance.md). This file runs the same arithmetic on the same weights
for one new token per row, with the cache of kv_cache.SlackLayer, in as few torch
calls as we could: each call costs a few microseconds of dispatch on the CPU,
whatever its size, and a step of the classroom model is about a hundred of them.

Paper map
  App. H     the cost of sampling, the bulk of a training step            decode_step()
  (ours)     the engine's decode path for plain Llama models               supports(), packed()
  (ours)     the prompts' keys, values and last logits in one pass         prefill()

What it computes is LlamaForCausalLM's forward for a single position (the
transformers Llama model): per layer, x += o(attn(rope(q(n1(x))), rope(k), v))
and x += down(silu(gate(n2(x))) * up(n2(x))), then logits = lm_head(norm(x)),
with RMSNorm, rotary embeddings (the model's own rotary module), grouped-query
attention over the row's cached keys and a mask for its left padding. prefill()
runs the same layers over whole left-padded prompts with causal attention, for
the keys and values the decoder caches and each prompt's last logits.

How the calls are saved (`packed`, rebuilt whenever a weight changes)
  * One matrix per layer for q, k and v, with the norm's weight folded into its
    columns (n1(x) W^T = rms(x) (W diag(w1))^T), and the same for gate and up.
  * The rotary embedding needs rotate_half(q) = (-q2, q1) per head; rotate_half is
    a signed permutation of q's coordinates, so for a narrow model (width up to
    ROTATE_ROWS_UP_TO) its rows are in the same matrix (the rows of W_q permuted
    and negated): rope(q) = q cos + rotate_half(q) sin is then one multiply-add
    over q and k together. A wider model computes rotate_half with torch calls.
  * cos and sin come from a table of the model's rotary module over every position
    (for a narrow model, repeated over the heads: one index a step).
  * x += out W_o^T is one addmm with W_o^T stored transposed.

Symbols (B rows, T cached columns with the new one, D hidden, H heads, Hkv key/value heads, d = D / H)
  tokens     -> (B,) the token each row sampled last
  mask       -> (B, T) 1 on a row's real columns, 0 on its left padding
  positions  -> (B,) each row's position: its real columns before the new one
  x          -> (B, D) the residual stream of the new token
  p          -> (B, 2 (H + Hkv) d + Hkv d) one layer's [q, k, rotate_half(q), rotate_half(k), v]
                (wider than ROTATE_ROWS_UP_TO: [q, k, v])
  q, k, v    -> (B, H or Hkv, 1, d)

Deviations and choices
  * Only plain Llama: the model must be a LlamaForCausalLM (not wrapped in a
    LoRA adapter) with default rotary embeddings and no biases (`supports`);
    anything else decodes through transformers' forward (engines.Decoder).
    The classroom world's model and the bundled SmolLM2-135M qualify; a LoRA
    policy (SmolLM2's demo) does not.
  * The packed weights are a second copy of the model's matrices (about 1.1x
    their size): fine for the CPU models this path is for, and the reason it is
    only used on the CPU. They are rebuilt when any parameter's storage or
    in-place version changes (optimizer steps and load_state_dict both count),
    and at every HFEngine.sync; a write through `param.data` is not seen between
    two syncs, so the project never does one.
  * Float rounding: folding the norm weights into the matrices and fusing the
    products changes the order of a few roundings, so the logits are not
    transformers' bit for bit: they agree within 1e-4 (tests/test_thought_mdp.py;
    about 1e-5 on the classroom model), and a near-tie may sample another token.
    docs/performance.md measures that the demos' results are unchanged.

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


# up to this width the rows of rotate_half(q) and rotate_half(k) join the q, k, v matrix (three
# torch calls fewer a layer); wider, their products cost more than the calls (SmolLM2, width
# 576: 8% fewer tokens/s on thought_mdp.py --benchmark), and rotate_half is a few torch calls
ROTATE_ROWS_UP_TO = 256


def signed_swap(weight, heads, d):
    """Rows of a projection `weight` (heads d, D) that give rotate_half of its output:
    per head, the second half negated, then the first half."""
    w = weight.view(heads, d, -1)
    return torch.cat((-w[:, d // 2 :], w[:, : d // 2]), 1).reshape(heads * d, -1)


def weights_key(params):
    """Changes whenever one of `params` is moved to new storage or written in place."""
    return tuple((p.data_ptr(), p._version) for p in params)


@torch.no_grad()
def packed(model):
    """The model's weights as decode_step reads them (see the module docstring),
    kept on the model and rebuilt when its weights change."""
    cached = getattr(model, "_packed_decode", None)  # (parameters, their key, the weights)
    if cached is not None and weights_key(cached[0]) == cached[1]:
        return cached[2]
    params = list(model.parameters())
    inner, config = model.model, model.config
    rows = config.hidden_size <= ROTATE_ROWS_UP_TO  # rotate_half's rows in the matrix, or cat ops
    H, Hkv = config.num_attention_heads, config.num_key_value_heads
    d = getattr(config, "head_dim", None) or config.hidden_size // H
    layers = []
    for layer in inner.layers:
        attn, mlp = layer.self_attn, layer.mlp
        q, k = attn.q_proj.weight, attn.k_proj.weight
        turned = [signed_swap(q, H, d), signed_swap(k, Hkv, d)] if rows else []
        qkv = torch.cat([q, k, *turned, attn.v_proj.weight])
        gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
        layers.append(
            (
                (qkv * layer.input_layernorm.weight).contiguous(),  # norm weight folded into the columns
                attn.o_proj.weight.t().contiguous(),
                (gate_up * layer.post_attention_layernorm.weight).contiguous(),
                mlp.down_proj.weight.t().contiguous(),
                layer.input_layernorm.variance_epsilon,
                layer.post_attention_layernorm.variance_epsilon,
                attn.scaling,
            )
        )
    positions = torch.arange(config.max_position_embeddings, device=model.device)[None]
    cos, sin = inner.rotary_emb(inner.embed_tokens.weight[:1][None], positions)  # (1, P, d) each
    weights = dict(
        rows=rows,
        H=H,
        Hkv=Hkv,
        d=d,
        embed=inner.embed_tokens.weight,
        layers=layers,
        cos=cos[0].contiguous(),  # (P, d)
        sin=sin[0].contiguous(),
        # narrow models: cos and sin already repeated over every q and k head, side by side,
        # so a step reads both with one index: (P, 2 (H + Hkv) d)
        rope=torch.cat((cos[0].repeat(1, H + Hkv), sin[0].repeat(1, H + Hkv)), -1) if rows else None,
        eps=inner.norm.variance_epsilon,
        head=(model.lm_head.weight * inner.norm.weight).contiguous(),  # (V, D)
    )
    model._packed_decode = (params, weights_key(params), weights)
    return weights


def unpack(model):
    """Forget the packed weights (HFEngine.sync: a parameter object may have been replaced)."""
    model.__dict__.pop("_packed_decode", None)


def rope_qk(w, p, cos, sin):
    """rope(q) and rope(k) side by side (N, (H + Hkv) d) from one layer's product p (N, ...)."""
    H, Hkv, d = w["H"], w["Hkv"], w["d"]
    qk = (H + Hkv) * d
    if w["rows"]:
        turned = p[:, qk : 2 * qk]
    else:  # rotate_half per head with torch ops
        heads = p[:, :qk].view(-1, H + Hkv, d)
        turned = torch.cat((-heads[..., d // 2 :], heads[..., : d // 2]), -1).view(-1, qk)
    return torch.addcmul(p[:, :qk] * cos, turned, sin)


def rope_tables(w, positions):
    """cos and sin (N, (H + Hkv) d) at `positions` (N,), repeated over every q and k head."""
    if w["rope"] is not None:
        both = w["rope"][positions]
        qk = both.shape[-1] // 2
        return both[:, :qk], both[:, qk:]
    heads = w["H"] + w["Hkv"]
    return w["cos"][positions].repeat(1, heads), w["sin"][positions].repeat(1, heads)


@torch.no_grad()
def prefill(model, ids, mask):
    """The prompts' keys and values and their last logits, as LlamaForCausalLM's forward
    gives them: ids and mask (U, T), left-padded, positions counted from each row's
    first real token. Returns ([(keys, values) (U, Hkv, T, d) per layer], logits (U, V)).
    A padding position attends to itself only (its values are never read; this keeps
    every softmax finite)."""
    w = packed(model)
    H, Hkv, d = w["H"], w["Hkv"], w["d"]
    U, T = ids.shape
    D = H * d
    x = F.embedding(ids, w["embed"]).view(U * T, D)  # (U T, D)
    cos, sin = rope_tables(w, (mask.cumsum(-1) - 1).clamp(min=0).view(-1))  # (U T, qk) each
    causal = torch.ones(T, T, dtype=torch.bool, device=ids.device).tril()
    attend = (causal & mask.bool()[:, None, :]) | torch.eye(T, dtype=torch.bool, device=ids.device)
    attend = attend[:, None]  # (U, 1, T, T)
    kv = []
    for qkv, o_t, gate_up, down_t, eps1, eps2, scale in w["layers"]:
        p = F.linear(F.rms_norm(x, (D,), eps=eps1), qkv)  # (U T, ...)
        roped = rope_qk(w, p, cos, sin)  # (U T, qk)
        q = roped[:, :D].view(U, T, H, d).transpose(1, 2)  # (U, H, T, d)
        k = roped[:, D:].reshape(U, T, Hkv, d).transpose(1, 2).contiguous()  # (U, Hkv, T, d)
        v = p[:, -Hkv * d :].reshape(U, T, Hkv, d).transpose(1, 2).contiguous()
        kv.append((k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, scale=scale, enable_gqa=H != Hkv)
        x = torch.addmm(x, out.transpose(1, 2).reshape(U * T, D), o_t)
        gate, up = F.linear(F.rms_norm(x, (D,), eps=eps2), gate_up).chunk(2, -1)
        x = torch.addmm(x, F.silu(gate) * up, down_t)
    last = x.view(U, T, D)[:, -1]  # (U, D): each row's last token (left padding)
    return kv, F.linear(F.rms_norm(last, (D,), eps=w["eps"]), w["head"])


@torch.no_grad()
def decode_step(model, tokens, mask, cache):
    """Logits (B, V) of the next token of every row, after appending `tokens` (B,) to
    `cache` (a DynamicCache whose layers are kv_cache.SlackLayer); `mask` (B, T) covers
    the cached columns and the new one."""
    w = packed(model)
    H, Hkv, d = w["H"], w["Hkv"], w["d"]
    B, D = tokens.shape[0], H * d
    x = F.embedding(tokens, w["embed"])  # (B, D)
    positions = mask.sum(-1) - 1  # (B,)
    cos, sin = rope_tables(w, positions)  # (B, (H + Hkv) d) each: every q and k head
    attend = mask.bool()[:, None, None, :]  # (B, 1, 1, T)
    for (qkv, o_t, gate_up, down_t, eps1, eps2, scale), slot in zip(w["layers"], cache.layers):
        p = F.linear(F.rms_norm(x, (D,), eps=eps1), qkv)  # (B, 2 qk + Hkv d), or (B, qk + Hkv d)
        roped, v = rope_qk(w, p, cos, sin), p[:, -Hkv * d :]  # (B, qk): rope(q), rope(k); (B, Hkv d)
        keys, values = slot.update(roped[:, D:].view(B, Hkv, 1, d), v.view(B, Hkv, 1, d))
        out = F.scaled_dot_product_attention(
            roped[:, :D].view(B, H, 1, d),
            keys,
            values,
            attn_mask=attend,
            scale=scale,
            enable_gqa=H != Hkv,
        )  # (B, H, 1, d)
        x = torch.addmm(x, out.view(B, D), o_t)
        gate, up = F.linear(F.rms_norm(x, (D,), eps=eps2), gate_up).chunk(2, -1)  # (B, I) each
        x = torch.addmm(x, F.silu(gate) * up, down_t)
    return F.linear(F.rms_norm(x, (D,), eps=w["eps"]), w["head"])  # (B, V)
