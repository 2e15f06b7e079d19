"""Tests for tiny_world.py: ground-truth first errors, the train/held-out split,
and the warm start's targets, measured on the real cached model (built on
first use)."""

import random

import pytest

import engines
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
    model, tokenizer = tw.load()  # builds and caches the warm start when missing (about 3 minutes)
    return engines.HFEngine(model, tokenizer, batch_size=64)


def test_warm_start_is_in_the_intended_range(world):
    """Success at the training temperature inside 20-50%, and a self-localizer
    clearly better than a random index on the policy's own failures, yet imperfect."""
    report = tw.warm_start_report(world, n=128)
    assert 0.2 <= report["pass_rate"] <= 0.5, report
    assert report["truth_known"], "a failed chain has a first error"
    assert report["random_step_accuracy"] + 0.15 < report["localization_accuracy"] < 0.95, report


def test_world_script_reports_its_targets(capsys):
    report = tw.main(["--n", "16"])
    assert set(report) >= {"pass_rate", "localization_accuracy", "random_step_accuracy"}
    assert "a held-out problem: Start at" in capsys.readouterr().out
