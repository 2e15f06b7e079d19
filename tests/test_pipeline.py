"""pipeline.py: the pipelined and phase-by-phase schedules give the buffers of the
sequential reference (rrpo.reset_prompt, Algorithm 2 one prompt after another),
token for token, and the pipelined one keeps the engine fuller."""

import dataclasses
import json

import pytest
from conftest import ANSWERED, UNANSWERED, KeyedScriptedEngine

import config
import engines
import grpo
import pipeline
import rrpo
import srpo
import thought_mdp as tm


def small_cfg(**kw):
    base = dict(
        model="unused",
        group_size=8,
        seed_budget=16,
        prompts_per_step=4,
        minibatch_prompts=1,
        thought=tm.ThoughtConfig(max_thoughts=5, max_thought_tokens=32, max_response_tokens=200),
    )
    base.update(kw)
    return config.Config(**base)


def problems(n):
    return [dict(ANSWERED, id=f"p{i}", question=f"What is 2 + 3? (copy {i})") for i in range(n)]


def snapshot(groups, stats):
    """Everything a step trains on and reports, timings left out."""
    rows = [
        (g.prompt, g.kind, [(r.thought_ids, r.reward, r.reset_index, r.finish_reason) for r in g.rollouts])
        for g in groups
    ]
    return rows, json.dumps(
        {k: v for k, v in stats.items() if not k.startswith(("time/", "engine/"))}, sort_keys=True
    )


@pytest.mark.parametrize("split", ["1x4", "2x4", "1x8"])
@pytest.mark.parametrize("method", ["rrpo", "srpo"])
def test_scripted_buffers_do_not_depend_on_the_schedule(tiny_tokenizer, split, method):
    """With outcomes drawn from each row's random key, the pipelined and the
    phase-by-phase schedules give the reference's groups, rollouts, seeds, h*, counts
    and records, also when some prompts need more search rounds (p_right high) or
    fall back to GRPO."""
    build = {"rrpo": rrpo.build_buffer, "srpo": srpo.build_buffer}[method]
    kinds, fallbacks = [], []
    for p_right, budget in [(0.5, 16), (0.85, 16), (0.95, 9)]:
        out = {}
        for schedule in ("sequential", "pipelined", "phases"):
            engine = KeyedScriptedEngine(tiny_tokenizer, p_right)
            cfg = small_cfg(split=split, schedule=schedule, seed_budget=budget)
            out[schedule] = snapshot(*build(engine, problems(6), cfg, step=3))
        assert out["pipelined"] == out["sequential"] and out["phases"] == out["sequential"]
        groups, stats = out["sequential"]
        kinds.append({kind for _, kind, _ in groups})
        fallbacks.append(json.loads(stats)["reset/grpo_fallbacks"])
    assert "suffix" in kinds[0] and fallbacks[-1] > 0  # 0.95 right, budget 9: some prompts find no failure


@pytest.mark.parametrize("method", ["rrpo", "srpo"])
def test_the_iid_base_group_is_the_same_on_every_schedule(tiny_tokenizer, method):
    build = {"rrpo": rrpo.build_buffer, "srpo": srpo.build_buffer}[method]
    out = {}
    for schedule in ("sequential", "pipelined", "phases"):
        cfg = small_cfg(schedule=schedule, base_group="iid")
        out[schedule] = snapshot(*build(KeyedScriptedEngine(tiny_tokenizer, 0.85), problems(6), cfg, step=1))
    assert out["pipelined"] == out["sequential"] == out["phases"]
    assert json.loads(out["sequential"][1])["reset/grpo_fallbacks"] > 0  # some prompts' four were all right


def test_a_seed_is_reset_while_its_base_group_still_samples(tiny_tokenizer):
    """The pipelined schedule starts a prompt's suffix group as soon as its seed is
    known: the suffix rows share decoder rounds with the same prompt's search rows.
    The phase-by-phase schedule never mixes them."""
    cfg = small_cfg(split="1x4", max_steps=1)
    for schedule, mixed in [("pipelined", True), ("phases", False)]:
        engine = KeyedScriptedEngine(tiny_tokenizer, 0.5)
        sched = pipeline.Scheduler(engine, schedule)
        sched.run(
            [
                rrpo.prompt_machine(sched, b, p, dataclasses.replace(cfg, schedule=schedule), 0, rrpo.RANDOM)
                for b, p in enumerate(problems(4))
            ]
        )
        rounds = [set(tags) for _, _, tags in sched.decoder.trace]
        assert any({"search", "suffix"} <= tags for tags in rounds) == mixed


def test_grpo_buffer_is_the_same_on_every_schedule(tiny_tokenizer):
    out = [
        snapshot(
            *grpo.build_buffer(
                KeyedScriptedEngine(tiny_tokenizer), problems(3), small_cfg(schedule=s), step=1
            )
        )
        for s in ("sequential", "pipelined", "phases")
    ]
    assert out[0] == out[1] == out[2]


def test_real_model_srpo_buffers_are_token_exact_across_schedules(trained_tiny, tiny_tokenizer):
    """The tiny Llama on the HF engine, sampling at temperature 1 with a batch of 5
    slots (rows wait and join mid-run): SRPO's buffer, localization requests
    included, is the reference's token for token under every schedule, and the fill
    metrics say where the time went."""
    out, fill = {}, {}
    for schedule in ("sequential", "pipelined", "phases"):
        engine = engines.HFEngine(trained_tiny, tiny_tokenizer, batch_size=5)
        cfg = config.Config(
            model="tiny",
            group_size=8,
            split="1x4",
            seed_budget=12,
            schedule=schedule,
            thought=tm.ThoughtConfig(
                temperature=1.0, max_thoughts=4, max_thought_tokens=16, max_response_tokens=48
            ),
        )
        groups, stats = srpo.build_buffer(
            engine, [ANSWERED, UNANSWERED, dict(ANSWERED, id="again")], cfg, step=2
        )
        out[schedule], fill[schedule] = snapshot(groups, stats), stats
    assert out["pipelined"] == out["sequential"] and out["phases"] == out["sequential"]
    stats = json.loads(out["sequential"][1])
    assert stats["reset/indices"] and stats["tokens/localize"] > 0
    assert fill["sequential"]["time/localize_s"] > 0
    for f in (fill["pipelined"], fill["phases"]):
        assert (
            f["time/phase/search_s"] > 0 and f["time/phase/localize_s"] > 0 and f["time/phase/suffix_s"] > 0
        )
        assert 0 < f["time/fill"] <= 1 and f["time/underfilled_s"] >= 0
    assert fill["pipelined"]["engine/decode_steps"] < fill["phases"]["engine/decode_steps"]
    # each distinct prompt (x_0, a localization request, x*) is prefilled once, whichever the schedule
    assert fill["pipelined"]["engine/prefill_tokens"] == fill["phases"]["engine/prefill_tokens"] > 0


def test_the_scheduler_refuses_a_machine_that_waits_for_nothing(tiny_tokenizer):
    def stuck(sched):
        while True:
            yield

    sched = pipeline.Scheduler(KeyedScriptedEngine(tiny_tokenizer), "pipelined")
    with pytest.raises(RuntimeError, match="nothing is being sampled"):
        sched.run([stuck(sched)])


@pytest.mark.parametrize("schedule", ["pipelined", "phases"])
def test_searching_ahead_changes_the_cost_not_the_buffer(tiny_tokenizer, schedule):
    """--search-ahead draws more of each prompt's stream at once and drops what is
    not needed once the seeds are known: the same groups, seeds and h*, fewer
    search rounds, and the dropped rows' tokens counted."""
    snaps, stats = [], []
    for ahead in (0, 4, 11):
        cfg = small_cfg(schedule=schedule, search_ahead=ahead)
        groups, s = rrpo.build_buffer(KeyedScriptedEngine(tiny_tokenizer, 0.85), problems(6), cfg, step=5)
        snaps.append(snapshot(groups, {})[0])
        stats.append(s)
    assert snaps[0] == snaps[1] == snaps[2]
    assert [s["reset/indices"] for s in stats[1:]] == [stats[0]["reset/indices"]] * 2
    assert stats[0]["tokens/search_dropped"] == 0 and stats[2]["tokens/search_dropped"] > 0
    assert stats[2]["tokens/base"] > stats[0]["tokens/base"]  # speculation costs tokens
    with pytest.raises(SystemExit):
        config.parse_config(["--search-ahead", "-1"], "rrpo")
