"""Tests for thought_ics.py: the loop's bookkeeping with a scripted engine
(rounds, stopping, the kept prefix, equal call budgets), the verifier's
parsing, and smoke runs on the bundled model and on the classroom world."""

import pytest
from conftest import ANSWERED, ScriptedEngine

import thought_ics as ics
import thought_mdp as tm

CFG = tm.ThoughtConfig(max_thoughts=5, max_thought_tokens=32, max_response_tokens=200)


def problems(n):
    return [dict(ANSWERED, id=f"p{i}") for i in range(n)]


def test_oracle_thought_ics_resets_at_the_localized_step_and_stops_when_right(tiny_tokenizer):
    # problem 0: wrong, then right after one reset; problem 1: right at once; problem 2: always wrong
    engine = ScriptedEngine(tiny_tokenizer, [False, True, False] + [True, False, False, False])
    records, first = ics.correct(engine, problems(3), "localize", "oracle", rounds=3, cfg=CFG)
    assert [r.reward for r in first] == [0, 1, 0]
    assert [(r["first"], r["final"], r["rounds"]) for r in records] == [(0, 1, 1), (1, 1, 0), (0, 0, 3)]
    assert all(x["h"] == 2 for r in records for x in r["resets"])  # the scripted localizer says step 2
    assert records[2]["calls"] == 6 and records[0]["calls"] == 2  # 2 calls a round: localize + resample
    assert engine.localize_calls == 4  # two problems in round 1, one in rounds 2 and 3


def test_kept_prefix_is_the_thoughts_before_h(tiny_tokenizer):
    engine = ScriptedEngine(tiny_tokenizer, [False, True])
    [first] = tm.sample_rollouts(engine, [tm.initial_state(tiny_tokenizer, problems(1)[0], CFG)], 1, CFG)
    marked_ids = tiny_tokenizer("Marked step.</thought>", add_special_tokens=False)["input_ids"]
    marked = tm.Rollout(
        first.problem,
        first.prompt_ids,
        [marked_ids] + first.thought_ids[1:],
        ["Marked step.</thought>"] + first.thought_texts[1:],
        "answer",
        0.0,
    )
    records, _ = ics.correct(engine, problems(1), "localize", "oracle", rounds=1, cfg=CFG, first=[marked])
    assert records[0]["resets"][0]["h"] == 2 and records[0]["final"] == 1
    assert records[0]["final_text"] == "Marked step.</thought>Second step.</thought>So \\boxed{5}.</thought>"


def test_baselines_get_the_same_number_of_calls(tiny_tokenizer):
    expected_rounds = {
        "oracle": {"localize": 2, "random": 4, "restart": 4},  # 2 calls a round against 1
        "self": {"localize": 2, "random": 3, "restart": 3},
    }  # 3 against 2
    for verify in ("oracle", "self"):
        for strategy in ics.STRATEGIES:
            engine = ScriptedEngine(tiny_tokenizer, [False] * 20, ["\\boxed{no}"] * 20)
            [record], _ = ics.correct(engine, problems(1), strategy, verify, rounds=2, cfg=CFG)
            assert record["rounds"] == expected_rounds[verify][strategy]
            assert record["calls"] == {"oracle": 4, "self": 6}[verify]
            engine = ScriptedEngine(tiny_tokenizer, [False] * 20, ["\\boxed{no}"] * 20)
            [record], _ = ics.correct(
                engine, problems(1), strategy, verify, rounds=2, cfg=CFG, match="rounds"
            )
            assert record["rounds"] == 2  # --match rounds: K resamples for everyone


def test_self_verification_stops_on_yes_and_on_no_verdict(tiny_tokenizer):
    engine = ScriptedEngine(
        tiny_tokenizer, [False, False, False], ["\\boxed{no}", "I think so.", "\\boxed{yes}"]
    )
    records, _ = ics.correct(engine, problems(2), "localize", "self", rounds=3, cfg=CFG)
    # problem 0: judged wrong, reset, then judged right (still wrong in truth);
    # problem 1: no verdict, left alone
    assert records[0]["verdicts"] == [False, True] and records[0]["rounds"] == 1
    assert records[1]["verdicts"] == [None] and records[1]["rounds"] == 0 and records[1]["final"] == 0
    summary = ics.summarize(records)
    assert summary["verdict_unparsed"] == pytest.approx(1 / 3) and summary["lift"] == 0
    assert summary["verdict_acc"] == 0.5  # "wrong" about a wrong answer, then "right" about a wrong one


def test_ground_truth_diagnostics_in_summary():
    records = [
        {
            "first": 0,
            "final": 1,
            "calls": 2,
            "tokens": 10,
            "verdicts": [],
            "judged": [],
            "resets": [{"h": 2, "h_true": 2, "fixed": 1}, {"h": 3, "h_true": 2, "fixed": 0}],
        }
    ]
    s = ics.summarize(records)
    assert (s["loc_acc"], s["fix_clean"], s["fix_erroneous"], s["lift"]) == (0.5, 1.0, 0.0, 1.0)


def test_smoke_on_the_bundled_model(tmp_path):
    results = ics.main(
        [
            "--model",
            "smollm2-135m",
            "--benchmarks",
            "bundled",
            "--n",
            "3",
            "--rounds",
            "1",
            "--max-thoughts",
            "2",
            "--max-thought-tokens",
            "16",
            "--out",
            str(tmp_path),
        ]
    )
    by = results["bundled"]
    # one shared first attempt
    assert set(by) == set(ics.STRATEGIES) and len({m["first"] for m in by.values()}) == 1
    assert (tmp_path / "bundled_oracle.md").exists() and (tmp_path / "bundled_oracle.json").exists()


def test_classroom_world_oracle_lift_and_localization(tmp_path):
    results = ics.main(
        [
            "--model",
            "tiny-world",
            "--benchmarks",
            "tiny-world",
            "--n",
            "64",
            "--rounds",
            "2",
            "--out",
            str(tmp_path),
        ]
    )["tiny-world"]
    assert results["localize"]["loc_acc"] > results["random"]["loc_acc"]
    assert all(m["final"] >= m["first"] for m in results.values())  # the oracle never undoes a right answer
    assert results["localize"]["final"] > results["localize"]["first"]
