"""Tests for tiny_world.py: ground-truth first errors, the train/held-out split,
the warm start's targets (measured on the real cached model, built on first
use) and a quick comparison run in which every method must learn."""

import random

import numpy as np
import pytest

import localize

import thought_mdp as tm
import tiny_world as tw


def test_first_error_labels_on_constructed_chains():
    rng = random.Random(0)
    hard = tw.hard_pairs()
    for i in range(200):
        p = tw.make_problem(rng, i, "t")
        k = rng.randrange(1, len(p["chain"]) + 1)
        thoughts, first = tw.demonstration(p, rng, hard, error_at=k)
        assert first == k and tw.first_error(p, thoughts) == k
    p = tw.make_problem(rng, 0, "t")
    x, right = p["start"], []
    for k, (op, a, v) in enumerate(p["chain"], 1):
        right.append(tw.thought_text(x, op, a, v, k == len(p["chain"])))
        x = v
    assert tw.first_error(p, right) is None
    assert tw.first_error(p, right[:1] + ["I am lost.</thought>"] + right[2:]) == 2  # a format slip is an error
    assert tw.first_error(p, right[:-1]) == len(right) - 1  # stopping early: the last thought is wrong
    assert tm.STOP in right[0] and "\\boxed{" in right[-1]


def test_held_out_problems_never_repeat_training_chains():
    train = {str([p["start"], p["chain"]]) for p in tw.problems("train", 4000)}
    test = tw.problems("test", 200)
    assert len(test) == 200 and not {str([p["start"], p["chain"]]) for p in test} & train
    assert tw.problems("test", 50) == tw.problems("test", 50)


@pytest.fixture(scope="module")
def world():
    model, tokenizer = tw.load()  # builds and caches the warm start when missing (about 2 minutes)
    return tm.HFEngine(model, tokenizer, batch_size=64)


def test_warm_start_is_in_the_intended_range(world):
    """Success at the training temperature inside 20-50%, and a self-localizer
    clearly better than a random index on the policy's own failures, yet imperfect."""
    cfg = tm.ThoughtConfig(max_thoughts=6, max_thought_tokens=24, max_response_tokens=96)  # T = 0.7, top-p 0.95
    states = [tm.initial_state(world.tokenizer, p, cfg) for p in tw.problems("test", 128)]
    rollouts = tm.sample_rollouts(world, states, 2, cfg, seed=1)
    success = np.mean([r.reward for r in rollouts])
    assert 0.2 <= success <= 0.5, success
    failed = [r for r in rollouts if r.reward < 1]
    truth = [tw.first_error(r.problem, r.thought_texts) for r in failed]
    assert all(t is not None for t in truth), "a failed chain has a first error"
    found = [loc.index for loc in localize.localize(world, failed)]
    accuracy = np.mean([h == t for h, t in zip(found, truth)])
    chance = np.mean([1 / len(r.thought_ids) for r in failed])  # a uniform reset index
    assert chance + 0.15 < accuracy < 0.95, (accuracy, chance)


def test_quick_comparison_every_method_learns(tmp_path, capsys):
    """`python tiny_world.py --quick`: one seed x 40 steps per method through the
    real grpo/rrpo/srpo code; each must raise its greedy held-out pass rate."""
    rows = tw.main(["--quick", "--out", str(tmp_path)])
    assert [r["method"] for r in rows] == tw.METHODS
    for r in rows:
        assert r["final"] >= r["start"] + 0.08, r
    by = {r["method"]: r for r in rows}
    assert by["oracle"]["loc_acc"] == 1.0 and by["rrpo"]["loc_acc"] < by["srpo"]["loc_acc"]
    assert (tmp_path / "tiny_world.png").exists() and (tmp_path / "tiny_world.md").exists()
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("summary (1 seed(s) x 40 steps)")
