"""Tests for grpo.py, rrpo.py and srpo.py: the loss against App. G's closed form,
advantages by hand, the reset buffer's invariants with a scripted engine,
checkpoint/resume equality, smoke runs, and a learning test."""

import dataclasses
import json
import os

import pytest
import torch
from conftest import (
    ANSWERED,
    ANSWERED_RESPONSE,
    UNANSWERED,
    UNANSWERED_RESPONSE,
    ScriptedEngine,
    build_model,
    train_to_say,
)

import config
import engines
import grpo
import localize
import rrpo
import runs
import srpo
import thought_mdp as tm


def test_pg_loss_gradient_is_the_closed_form_of_appendix_g():
    torch.manual_seed(0)
    N, T, V = 3, 5, 7
    logits = torch.randn(N, T, V, requires_grad=True)
    y = torch.randint(0, V, (N, T))
    adv = torch.tensor([1.5, -0.5, 0.0])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.float)
    logp = torch.log_softmax(logits, -1).gather(-1, y[..., None]).squeeze(-1)  # (N, T)
    grpo.pg_loss(logp, adv, mask).backward()
    pi = torch.softmax(logits, -1).detach()
    T_i = mask.sum(1)
    for i in range(N):
        for t in range(T):
            g = logits.grad[i, t]
            if mask[i, t] == 0:
                assert torch.all(g == 0), "masked prefix tokens get exactly zero gradient"
                continue
            p_y = pi[i, t, y[i, t]]
            expected = -(1 / N) * (adv[i] / T_i[i]) * (1 - p_y)  # App. G on the sampled token
            assert g[y[i, t]].item() == pytest.approx(expected.item(), abs=1e-6)
            others = torch.ones(V, dtype=torch.bool)
            others[y[i, t]] = False  # and +(1/N)(A_i/T_i) pi_v on every other token
            assert torch.allclose(g[others], (1 / N) * (adv[i] / T_i[i]) * pi[i, t, others], atol=1e-6)
    g_bar = grpo.gradient_signal(logp.detach(), adv, mask)
    assert g_bar[2] == 0  # A = 0: no signal
    assert g_bar[0].item() == pytest.approx(((1.5 / 3) * (1 - logp[0, 2:].exp())).mean().item(), rel=1e-5)


def test_pg_loss_with_clipping_equals_plain_loss_at_ratio_one():
    torch.manual_seed(0)
    logp = torch.randn(2, 4)
    adv, mask = torch.tensor([1.0, -0.5]), torch.ones(2, 4)
    # at rho = 1 the clipped surrogate's value is A per token and its gradient that of A log pi
    lp1 = logp.clone().requires_grad_(True)
    lp2 = logp.clone().requires_grad_(True)
    grpo.pg_loss(lp1, adv, mask).backward()
    clipped = grpo.pg_loss(lp2, adv, mask, logp.detach(), clip_eps=0.2)
    clipped.backward()
    assert torch.allclose(lp1.grad, lp2.grad)
    assert clipped.item() == pytest.approx(-adv.mean().item())
    # far from rho = 1 the clip removes the gradient of a token that already moved past 1 + eps
    lp3 = (logp + 1.0).requires_grad_(True)  # rho = e > 1.2 with A > 0 for row 0
    grpo.pg_loss(lp3, adv, mask, logp, clip_eps=0.2).backward()
    assert torch.all(lp3.grad[0] == 0) and torch.all(lp3.grad[1] != 0)


def test_constant_normaliser_changes_only_the_normaliser():
    """--loss-normaliser constant: every rollout's token sum over one constant C, by hand."""
    logp = torch.tensor([[-1.0, -2.0, -3.0, -4.0], [-0.5, -1.5, -9.0, -9.0]])
    mask = torch.tensor([[1.0, 1, 1, 1], [0, 0, 1, 1]])  # T_i = 4 and 2 (a suffix of 2 tokens)
    adv = torch.tensor([1.0, -1.0])
    # the paper's: -(1/2)((-10)/4 + (-1)(-18)/2) = -(1/2)(-2.5 + 9) = -3.25
    assert grpo.pg_loss(logp, adv, mask).item() == pytest.approx(-3.25)
    # constant C = 8: -(1/2)((-10)/8 + 18/8) = -0.5
    assert grpo.pg_loss(logp, adv, mask, constant=8).item() == pytest.approx(-0.5)
    lp1, lp2 = logp.clone().requires_grad_(True), logp.clone().requires_grad_(True)
    grpo.pg_loss(lp1, adv, mask).backward()
    grpo.pg_loss(lp2, adv, mask, constant=8).backward()
    # the same gradient, row i scaled by T_i / C: only the normaliser moved
    assert torch.allclose(lp2.grad, lp1.grad * torch.tensor([[4 / 8], [2 / 8]]))
    cfg = config.parse_config(["--loss-normaliser", "constant"], "srpo")
    assert cfg.loss_normaliser == "constant" and config.Config().loss_normaliser == "rollout"


def test_group_advantages_by_hand():
    assert grpo.group_advantages([1, 0, 0, 1]).tolist() == [1, -1, -1, 1]
    assert grpo.group_advantages([1, 1, 1, 1]).tolist() == [0, 0, 0, 0]
    assert grpo.group_advantages([0.0, 0.0]).tolist() == [0, 0]
    a = grpo.group_advantages([0, 0, 0, 1])  # mean 1/4, std sqrt(3)/4
    assert a.tolist() == pytest.approx([-1 / 3**0.5] * 3 + [3**0.5])
    assert not torch.isnan(grpo.group_advantages([0.5])).any()


def small_cfg(**kw):
    base = dict(
        model="unused",
        group_size=8,
        seed_budget=16,
        prompts_per_step=2,
        minibatch_prompts=1,
        thought=tm.ThoughtConfig(max_thoughts=5, max_thought_tokens=32, max_response_tokens=200),
    )
    base.update(kw)
    return config.Config(**base)


@pytest.mark.parametrize(
    "split,base_sizes,suffix_sizes", [("1x4", [4], [4]), ("2x4", [], [4, 4]), ("1x8", [], [8])]
)
def test_reset_buffer_invariants(tiny_tokenizer, split, base_sizes, suffix_sizes):
    cfg = small_cfg(split=split)
    outcomes = [True, False, True, True, False, True, False, True, True, True] * 10
    engine = ScriptedEngine(tiny_tokenizer, outcomes)
    problems = [ANSWERED, dict(ANSWERED, id="t-add-2")]
    groups, stats = rrpo.reset_buffer(engine, problems, cfg, step=0)
    for b in range(2):
        base = [g for g in groups if g.prompt == b and g.kind == "base"]
        suffix = [g for g in groups if g.prompt == b and g.kind == "suffix"]
        assert [len(g.rollouts) for g in base] == base_sizes
        assert [len(g.rollouts) for g in suffix] == suffix_sizes
    n_seeds = rrpo.split_sizes(split, 8)[1]
    assert len(stats["reset/indices"]) == 2 * n_seeds and stats["reset/grpo_fallbacks"] == 0
    for g in (g for g in groups if g.kind == "suffix"):
        h = g.rollouts[0].reset_index
        prefix = g.rollouts[0].thought_ids[: h - 1]
        for r in g.rollouts:
            assert r.reset_index == h and r.thought_ids[: h - 1] == prefix  # same first h*-1 thought ids
            assert r.own_mask[: r.n_prefix_tokens] == [0] * r.n_prefix_tokens  # prefix masked
            assert sum(r.own_mask) == r.n_own_tokens > 0
    assert stats["tokens/suffix"] == sum(
        r.n_own_tokens for g in groups if g.kind == "suffix" for r in g.rollouts
    )


def test_seed_is_excluded_and_base_group_filled_in_stream_order(tiny_tokenizer):
    cfg = small_cfg()
    # stream for prompt 0: right, right, wrong (seed), right, right, ...
    engine = ScriptedEngine(tiny_tokenizer, [True, True, False, True, True] + [True] * 20)
    found = rrpo.reset_prompt(engine, 0, ANSWERED, cfg, 0, rrpo.RANDOM)
    stream, base, seeds = found.stream, found.base, found.seeds
    assert seeds[0] is stream[2] and len(seeds) == 1 and seeds[0].reward == 0
    assert [id(r) for r in base] == [id(stream[i]) for i in (0, 1, 3, 4)] and all(r.reward == 1 for r in base)


def test_iid_base_group_keeps_its_seed_and_never_searches_further(tiny_tokenizer):
    """--base-group iid: the first `base` rollouts are the base group, seed included;
    with no failure among them the prompt falls back to GRPO without sampling more."""
    cfg = dataclasses.replace(small_cfg(), base_group="iid")
    engine = ScriptedEngine(tiny_tokenizer, [True, True, False, True, True] + [True] * 20)
    found = rrpo.reset_prompt(engine, 0, ANSWERED, cfg, 0, rrpo.RANDOM)
    stream, base, seeds = found.stream, found.base, found.seeds
    assert len(stream) == 4 and base == stream and len(seeds) == 1 and seeds[0] is stream[2]
    engine = ScriptedEngine(tiny_tokenizer, [True] * 100)
    groups, stats = rrpo.reset_buffer(engine, [ANSWERED], cfg, step=0)
    assert stats["reset/grpo_fallbacks"] == 1 and stats["reset/search_rollouts"] == 4
    assert rrpo.check_split(dataclasses.replace(cfg, split="2x4")).startswith("--base-group iid")
    assert config.parse_config(["--base-group", "iid"], "rrpo").base_group == "iid"


@pytest.mark.parametrize("base_group", ["excluded", "iid"])
def test_sampled_rollouts_are_counted(tiny_tokenizer, base_group):
    """rollouts/generated counts every rollout sampled: the seed search's streams
    (correct rollouts thrown away included) and the suffixes. Each rollout of the
    scripted engine ends in exactly one scripted outcome, which gives the count."""
    cfg = small_cfg(base_group=base_group)
    outcomes = [True, True, True, True, True, False, True, False, True, True] * 20
    engine = ScriptedEngine(tiny_tokenizer, outcomes)
    groups, stats = rrpo.reset_buffer(engine, [ANSWERED, dict(ANSWERED, id="t-add-2")], cfg, step=0)
    sampled = len(outcomes) - len(engine.outcomes)
    suffixes = sum(len(g.rollouts) for g in groups if g.kind == "suffix")
    assert stats["rollouts/generated"] == sampled == stats["reset/search_rollouts"] + suffixes
    if (
        base_group == "iid"
    ):  # one draw of 4 per prompt, and the first prompt's four are all right: GRPO fallback
        assert (stats["reset/search_rollouts"], suffixes) == (8, 4)
    else:  # 5 + 5 first; the first prompt's five are right, so it searches on in rounds of 2 until a failure
        assert (
            suffixes == 8 and stats["reset/search_rollouts"] > 10 and stats["reset/search_rollouts"] % 2 == 0
        )
    engine = ScriptedEngine(tiny_tokenizer, outcomes)
    _, stats = grpo.build_buffer(engine, [ANSWERED], cfg, step=0)
    assert stats["rollouts/generated"] == len(outcomes) - len(engine.outcomes) == 8


def test_fallback_to_grpo_when_no_rollout_fails(tiny_tokenizer):
    """The authors' release at 1x4: 12 fresh chains at most; with no failure among them, the
    first 4 and 4 more drawn after the search form one GRPO group of 8."""
    cfg = small_cfg(seed_budget=12)
    fresh = [True, False, True, True]  # the 4 drawn after the search: a failure here is no seed
    engine = ScriptedEngine(tiny_tokenizer, [True] * 12 + fresh)
    found = rrpo.reset_prompt(engine, 0, ANSWERED, cfg, 0, rrpo.RANDOM)
    assert found.seeds is None and len(found.stream) == 16
    assert found.base == found.stream[:4] + found.stream[12:]
    engine = ScriptedEngine(tiny_tokenizer, [True] * 12 + fresh)
    groups, stats = rrpo.reset_buffer(engine, [ANSWERED], cfg, step=0)
    assert stats["reset/grpo_fallbacks"] == 1 and stats["reset/search_rollouts"] == 16
    assert [(g.kind, len(g.rollouts)) for g in groups] == [("base", 8)]
    assert [r.reward for r in groups[0].rollouts] == [1.0] * 4 + [1.0, 0.0, 1.0, 1.0]
    assert config.Config().seed_budget == 12  # the release's search budget is the default


def test_a_rollout_with_no_thought_is_never_a_seed(tiny_tokenizer):
    cfg = small_cfg()
    # stream: no thought (EOS at once, reward 0), right, wrong (the seed), right, right, ...
    engine = ScriptedEngine(tiny_tokenizer, [None, True, False, True, True] + [True] * 20)
    found = rrpo.reset_prompt(engine, 0, ANSWERED, cfg, 0, rrpo.RANDOM)
    empty = found.stream[0]
    assert empty.reward == 0 and empty.finish_reason == "eos" and not rrpo.can_seed(empty)
    assert found.seeds == [found.stream[2]]
    assert [id(r) for r in found.base] == [id(found.stream[i]) for i in (0, 1, 3, 4)]


def test_no_prefix_mask_trains_the_shared_prefix_too(tiny_model, tiny_tokenizer):
    """The paper masks the reset prefix (Sec. 4.3); --no-prefix-mask, an ablation, does not."""
    engine = ScriptedEngine(tiny_tokenizer, [False, True, True, True, True, True])
    caps = tm.ThoughtConfig()
    [seed] = tm.sample_rollouts(engine, [tm.initial_state(tiny_tokenizer, ANSWERED, caps)], 1, caps)
    [suffix] = tm.sample_rollouts(engine, [tm.reset_state(seed, 2)], 1, caps)
    assert suffix.n_prefix_tokens > 0
    _, masked = grpo.token_logprobs(tiny_model, [suffix], 0, 1.0)
    _, whole = grpo.token_logprobs(tiny_model, [suffix], 0, 1.0, prefix_mask=False)
    assert masked.sum() == suffix.n_own_tokens and whole.sum() == len(suffix.response_ids)
    assert config.parse_config(["--no-prefix-mask"], "srpo").no_prefix_mask


def test_localize_offset_resets_earlier(tiny_tokenizer):
    """The release's offset ablation: h* - k, never before step 1."""
    caps = tm.ThoughtConfig()
    state = tm.initial_state(tiny_tokenizer, ANSWERED, caps)
    [seed] = tm.sample_rollouts(ScriptedEngine(tiny_tokenizer, [False]), [state], 1, caps)
    answer = engines.Completion([1], "\\boxed{3}", "stop")
    for offset, h in [(0, 3), (1, 2), (5, 1)]:
        cfg = small_cfg(localize_offset=offset)
        assert srpo.self_localized_index(seed, [answer], cfg, 0, (0, 0)).h == h


def test_an_epoch_drops_its_last_partial_step():
    """The authors' release: 400 problems / 32 a step = 12 steps an epoch, 24 in two."""
    cfg = config.Config()
    assert grpo.steps_per_epoch(400, cfg) == 12 and cfg.epochs * grpo.steps_per_epoch(400, cfg) == 24
    problems = [{"id": i} for i in range(400)]
    epoch = [p["id"] for step in range(12) for p in grpo.step_problems(problems, cfg, step)]
    assert len(epoch) == len(set(epoch)) == 384  # 16 problems sit this epoch out
    assert len(grpo.step_problems(problems, cfg, 12)) == 32  # step 12 opens the second epoch
    assert grpo.steps_per_epoch(5, cfg) == 1  # fewer problems than a step: one smaller step


def test_the_problem_draw_does_not_depend_on_the_run_key():
    """The release draws its 400 problems (and the validation ones) once, with key 42; the
    run keys 0, 42, 420 vary the training only."""

    def drawn(*argv):
        cfg = config.parse_config(["--data", "bundled", "--train-problems", "3", "--eval-every", "1", *argv])
        train = grpo.training_problems(cfg)
        return [p["id"] for p in train], [p["id"] for p in grpo.validation_problems(cfg, train)]

    assert config.Config().data_key == 42
    assert drawn("--run-key", "0") == drawn("--run-key", "420")
    assert drawn("--data-key", "7") != drawn()


def test_srpo_resets_at_the_self_localized_step(tiny_tokenizer):
    cfg = small_cfg()
    engine = ScriptedEngine(tiny_tokenizer, [False, True] * 50)
    groups, stats = srpo.build_buffer(engine, [ANSWERED, dict(ANSWERED, id="b")], cfg, step=0)
    assert stats["reset/indices"] == [2, 2] and stats["localize/parse_failures"] == 0
    assert engine.localize_calls == 2 and stats["tokens/localize"] > 0
    assert stats["localize/fallback_rate"] == 0 and all(r["h_ref"] is None for r in stats["reset/records"])
    assert [stats[f"localize/path/{p}"] for p in localize.PATHS] == [2, 0, 0, 0]  # both read from a box
    for g in (g for g in groups if g.kind == "suffix"):
        assert all(
            r.thought_texts[0] == "First step.</thought>" and r.n_prefix_thoughts == 1 for r in g.rollouts
        )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_tokenizer):
    """A tiny model that answers the two test problems, saved like a Hub folder."""
    model = train_to_say(
        build_model(tiny_tokenizer, key=2),
        tiny_tokenizer,
        [(ANSWERED, ANSWERED_RESPONSE), (UNANSWERED, UNANSWERED_RESPONSE)],
        steps=60,
    )
    folder = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    data = folder / "train.jsonl"
    data.write_text(json.dumps(ANSWERED) + "\n" + json.dumps(UNANSWERED) + "\n")
    return folder


def run_args(model_dir, out, *extra):
    return [
        "--model",
        str(model_dir),
        "--data",
        str(model_dir / "train.jsonl"),
        "--out",
        str(out),
        "--prompts-per-step",
        "2",
        "--minibatch-prompts",
        "1",
        "--group-size",
        "8",
        "--temperature",
        "1.0",
        "--max-thoughts",
        "4",
        "--max-thought-tokens",
        "24",
        "--max-response-tokens",
        "64",
        "--lora-rank",
        "8",
        "--lora-alpha",
        "8",
        "--lr",
        "1e-3",
        "--epochs",
        "5",
        "--save-every",
        "1",
        *extra,
    ]


def comparable(path):
    rows = [json.loads(line) for line in open(path)]
    return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in rows]


def test_resume_gives_the_metrics_of_an_uninterrupted_run(model_dir, tmp_path):
    grpo.main(run_args(model_dir, tmp_path / "full", "--max-steps", "3"))
    grpo.main(run_args(model_dir, tmp_path / "cut", "--max-steps", "2"))
    grpo.main(["--resume", str(tmp_path / "cut"), "--max-steps", "3"])
    full, cut = (
        comparable(tmp_path / "full" / "metrics.jsonl"),
        comparable(tmp_path / "cut" / "metrics.jsonl"),
    )
    assert len(full) == 3 and full == cut
    assert any(m["train/grad_norm"] > 0 for m in full), "the run actually trained"
    adapter = tmp_path / "cut" / "checkpoint" / "adapter"
    assert (adapter / "adapter_config.json").exists() and (adapter / "adapter_model.safetensors").exists()
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), adapter)  # loads as PEFT


@pytest.mark.parametrize("module,extra", [(grpo, []), (rrpo, ["--split", "2x4"]), (srpo, [])])
def test_each_script_runs_two_steps(model_dir, tmp_path, module, extra):
    history = module.main(run_args(model_dir, tmp_path / "run", "--max-steps", "2", *extra))
    assert len(history) == 2
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 2
    for m in history:
        for key in (
            "tokens/base",
            "tokens/suffix",
            "tokens/localize",
            "time/gen_s",
            "time/localize_s",
            "time/train_s",
            "time/step_s",
            "reward/base",
            "reward/suffix",
        ):
            assert key in m
    if module is not grpo:
        assert all(len(m["reset/indices"]) == len(m["reset/seed_lengths"]) for m in history)
        # the reset record: one line a seed, with the seed, h* and every suffix's reward
        records = [json.loads(line) for line in open(tmp_path / "run" / "resets.jsonl")]
        assert len(records) == sum(len(m["reset/indices"]) for m in history)
        assert [r["h"] for r in records] == [h for m in history for h in m["reset/indices"]]
        for r in records:
            assert len(r["seed"]["thoughts"]) == r["H_s"] and 1 <= r["h"] <= r["H_s"]
            assert all(s["reward"] in (0.0, 1.0) for s in r["suffixes"]) and r["suffixes"]
            assert (r["path"] in localize.PATHS) == (module is srpo)
        assert "reset/trees" not in json.loads(
            (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0]
        )
        import report

        assert report.figure_reset_tree([str(tmp_path / "run")], str(tmp_path / "tree.png"))
        assert (tmp_path / "tree.png").stat().st_size > 1000
        assert not report.figure_reset_tree([str(tmp_path)], str(tmp_path / "none.png"))  # no records


def test_a_run_on_code_records_its_isolation_and_infrastructure_failures(model_dir, tmp_path):
    import sandbox

    if sandbox.mode() != "namespaces":
        pytest.skip(f"training on code is refused in mode {sandbox.mode()!r} (tested in test_rewards.py)")
    data = tmp_path / "code.jsonl"
    tests = [{"type": "call", "fn_name": "add", "input": [1, 2], "output": 3}]
    rows = [{"id": f"c{i}", "kind": "code", "question": "Write add(a, b).", "tests": tests} for i in range(2)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = run_args(model_dir, tmp_path / "run", "--max-steps", "1")
    args[args.index("--data") + 1] = str(data)
    grpo.main(args)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["sandbox_mode"] == "namespaces"
    [m] = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert m["sandbox/mode"] == "namespaces"
    assert {k: m[f"sandbox/failures/{k}"] for k in sandbox.FAILURE_KINDS} == dict.fromkeys(
        sandbox.FAILURE_KINDS, 0
    )


def test_grpo_learns_a_first_token_preference(tiny_tokenizer):
    """A real tiny model, the real loss and update: reward = first token in a fixed
    set of 60 ids (about 10% at the start). A few dozen GRPO steps raise it clearly."""
    model = build_model(tiny_tokenizer, key=3)
    cfg = config.Config(
        model="tiny",
        full_finetune=True,
        lr=5e-3,
        group_size=8,
        minibatch_prompts=4,
        thought=tm.ThoughtConfig(temperature=1.0),
    )
    policy = grpo.make_policy(model, cfg)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr)
    engine = engines.HFEngine(policy, tiny_tokenizer)
    prompts = [
        tm.encode_prompt(tiny_tokenizer, dict(ANSWERED, question=q), tm.ThoughtConfig())
        for q in ("a", "b", "c", "d")
    ]
    good = set(range(10, 70))

    def good_rate():
        with torch.no_grad():
            probs = [torch.softmax(policy(input_ids=torch.tensor([p])).logits[0, -1], -1) for p in prompts]
        return float(torch.stack([pr[list(good)].sum() for pr in probs]).mean())

    start = good_rate()
    for step in range(40):
        outs = engine.generate(prompts, engines.SamplingSettings(1.0, 1.0, 1, (), 8, step))
        groups = []
        for b, (p, completions) in enumerate(zip(prompts, outs)):
            rollouts = [
                tm.Rollout(ANSWERED, p, [c.token_ids], [c.text], "max_tokens", float(c.token_ids[0] in good))
                for c in completions
            ]
            groups.append(
                grpo.Group(b, "base", rollouts, grpo.group_advantages([r.reward for r in rollouts]))
            )
        grpo.train_on_buffer(policy, optimizer, groups, cfg, engine.pad_id)
    end = good_rate()
    assert 0.03 < start < 0.25 and end > start + 0.3, (start, end)


def test_demo_presets_and_their_run_folders():
    cfg = config.parse_config(["--demo"], "srpo")
    assert (cfg.model, cfg.data, cfg.eval_data, cfg.out) == (
        "tiny-world",
        "tiny-world-train",
        "tiny-world",
        "runs/srpo-demo",
    )
    assert cfg.full_finetune and cfg.eval_every > 0 and cfg.group_size == 8 and cfg.split == "1x4"
    cfg = config.parse_config(["--demo", "smollm2-135m", "--max-steps", "2"], "grpo")
    assert (cfg.model, cfg.data, cfg.max_steps, cfg.out) == (
        "smollm2-135m",
        "bundled",
        2,
        "runs/grpo-demo-smollm2-135m",
    )
    assert (
        config.parse_config([], "rrpo").out == "runs/rrpo"
        and config.parse_config([], "rrpo").model != "tiny-world"
    )
    with pytest.raises(SystemExit):
        config.parse_config(["--demo", "gpt-5"], "grpo")


def test_thought_flags_land_in_the_one_thought_config():
    cfg = config.parse_config(["--demo", "--max-thoughts", "5", "--temperature", "1.0"], "grpo")
    assert (cfg.thought.max_thoughts, cfg.thought.max_thought_tokens, cfg.thought.temperature) == (5, 24, 1.0)
    # the paper's caps (App. C), the prompt as plain text as in the authors' release
    assert config.parse_config([], "grpo").thought == tm.ThoughtConfig(prompt_format="raw")
    assert (
        config.parse_config(["--demo"], "grpo").thought.prompt_format == "chat"
    )  # what the world was built on
    assert config.parse_config(["--demo", "smollm2-135m"], "grpo").thought.prompt_format == "chat"
    assert config.parse_config(["--prompt-format", "chat"], "grpo").thought.prompt_format == "chat"
    world = config.parse_config(
        ["--demo", "--model", "tiny-world:horizon=16"], "grpo"
    ).thought  # caps follow H
    assert (world.max_thoughts, world.max_response_tokens) == (18, 288)
    # another world trains and validates on its own chains, not the default world's
    cfg = config.parse_config(["--demo", "--model", "tiny-world:horizon=16"], "grpo")
    assert (cfg.data, cfg.eval_data) == ("tiny-world-train:horizon=16", "tiny-world:horizon=16")
    cfg = config.parse_config(
        ["--demo", "--model", "tiny-world:horizon=16", "--data", "tiny-world-train"], "grpo"
    )
    assert cfg.data == "tiny-world-train"  # unless told otherwise
    assert config.parse_config(["--demo"], "grpo").data == "tiny-world-train"


def test_every_flag_has_help_from_its_field_comment(capsys):
    with pytest.raises(SystemExit):
        config.parse_config(["--help"], "srpo")
    text = " ".join(capsys.readouterr().out.split())
    for cls in (config.Config, tm.ThoughtConfig):
        comments = tm.field_help(cls)
        for f in dataclasses.fields(cls):
            if f.name in ("method", "thought"):
                continue
            assert f.name in comments, f"{cls.__name__}.{f.name} has no comment to be its --help"
            assert "--" + f.name.replace("_", "-") in text
            assert " ".join(comments[f.name].split())[:30] in text, f.name


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--split", "3x3"], "invalid choice"),
        (["--group-size", "4", "--split", "1x8"], "more than --group-size 4"),
        (["--seed-budget", "3"], "--seed-budget 3"),
        (["--prompts-per-step", "6", "--minibatch-prompts", "4"], "multiple of --minibatch-prompts"),
        (["--temperature", "hot"], "--temperature"),
        (["--prompt-format", "plain"], "--prompt-format: invalid choice"),
        (["--localize-fallback", "middle"], "--localize-fallback: invalid choice"),
        (["--localize-offset", "-1"], "--localize-offset must be at least 0"),
    ],
)
def test_bad_flags_are_refused_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit):
        config.parse_config(argv, "rrpo", check=rrpo.check_split)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in err and "Traceback" not in err


def test_splits_add_up_to_the_group_size():
    assert [rrpo.split_sizes(s, 8) for s in config.SPLITS] == [(4, 1, 4), (0, 2, 4), (0, 1, 8)]  # Sec. 5.1
    for G in (8, 12, 16):
        for s in config.SPLITS:
            n_base, n_seeds, n_suffix = rrpo.split_sizes(s, G)
            assert n_base + n_seeds * n_suffix == G
    cfg = small_cfg(group_size=16, seed_budget=32)
    assert rrpo.check_split(cfg) is None and rrpo.split_sizes(cfg.split, 16) == (12, 1, 4)


def test_srpo_settings_are_saved_and_restored_on_resume(tmp_path):
    out = str(tmp_path / "run")
    cfg = config.parse_config(
        [
            "--localizer",
            "some/judge",
            "--reference-localizer",
            "other/judge",
            "--out",
            out,
            "--max-thoughts",
            "7",
        ],
        "srpo",
    )
    runs.prepare(out, dataclasses.asdict(cfg))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["localizer"], saved["reference_localizer"], saved["thought"]["max_thoughts"]) == (
        "some/judge",
        "other/judge",
        7,
    )
    again = config.parse_config(["--resume", out, "--max-steps", "3"], "srpo")
    assert (again.localizer, again.reference_localizer, again.thought, again.max_steps) == (
        "some/judge",
        "other/judge",
        cfg.thought,
        3,
    )
    with pytest.raises(SystemExit):
        config.parse_config(["--resume", out, "--lr", "1"], "srpo")  # a resumed run keeps its config


def test_a_run_folder_with_the_older_flat_config_still_resumes(tmp_path):
    flat = {k: v for k, v in dataclasses.asdict(config.Config(method="rrpo")).items() if k != "thought"}
    # the caps at the top level, as once saved
    flat.update(max_thoughts=6, max_thought_tokens=24, temperature=1.0)
    (tmp_path / "config.json").write_text(json.dumps(flat))
    for field in (
        "data_key",
        "seed_budget",
        "localize_temperature",
        "localize_max_tokens",
        "localize_fallback",
    ):
        flat.pop(field)  # saved before these existed
    (tmp_path / "config.json").write_text(json.dumps(flat))
    cfg = config.load_config(str(tmp_path))
    assert (
        cfg.method,
        cfg.thought.max_thoughts,
        cfg.thought.max_thought_tokens,
        cfg.thought.temperature,
    ) == ("rrpo", 6, 24, 1.0)
    # ... and it runs as it ran then: the run key's data, the old search and localizer, cut thoughts
    assert (cfg.data_key, cfg.seed_budget, cfg.localize_fallback, cfg.thought.cut_last_thought) == (
        None,
        16,
        "uniform",
        True,
    )
    assert config.data_key(cfg) == cfg.run_key


def test_chunked_logprobs_equal_the_whole_softmax_with_gradients(trained_tiny, tiny_tokenizer, monkeypatch):
    cfg = tm.ThoughtConfig(max_thoughts=3, max_thought_tokens=16, max_response_tokens=48, temperature=1.0)
    states = [tm.initial_state(tiny_tokenizer, p, cfg) for p in (ANSWERED, UNANSWERED)]
    rollouts = tm.sample_rollouts(engines.HFEngine(trained_tiny, tiny_tokenizer), states, 2, cfg, key=3)
    results = []
    for chunk in (10_000, 3):  # one chunk, then many
        monkeypatch.setattr(grpo, "LOGP_CHUNK", chunk)
        trained_tiny.zero_grad()
        logp, mask = grpo.token_logprobs(trained_tiny, rollouts, tiny_tokenizer.pad_token_id, 0.7)
        (logp * mask).sum().backward()
        results.append((logp.detach(), trained_tiny.lm_head.weight.grad.clone()))
    trained_tiny.zero_grad()
    assert torch.allclose(results[0][0], results[1][0], atol=1e-6)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-5) and results[0][1].abs().sum() > 0


def test_random_seeds_are_run_keys_and_the_old_names_still_work(tmp_path):
    """A seed is the paper's failed rollout; a random-number seed is a run key. The old
    flags stay as deprecated aliases, and a config.json written under the old names loads."""
    assert config.parse_config(["--run-key", "42"]).run_key == 42
    assert config.parse_config(["--seed", "42"]).run_key == 42
    assert config.parse_config(["--vllm-seeded"]).vllm_keyed is True
    saved = dataclasses.asdict(config.Config(run_key=7, vllm_keyed=True))
    saved["seed"], saved["vllm_seeded"] = saved.pop("run_key"), saved.pop("vllm_keyed")
    os.makedirs(tmp_path / "old-run")
    with open(tmp_path / "old-run" / "config.json", "w") as fh:
        json.dump(saved, fh)
    old = config.load_config(str(tmp_path / "old-run"))
    assert old.run_key == 7 and old.vllm_keyed is True
