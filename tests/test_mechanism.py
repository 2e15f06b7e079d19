"""Tests for mechanism.py: App. G's signal summed per thought by hand, where it lands
against a known first error, prefix sharing counted by hand, and a short run on the
classroom world's warm start."""

import random

import numpy as np
import pytest
import torch

import grpo
import mechanism
import thought_mdp as tm
import tiny_world as tw


def rollout(problem, thoughts, ids, reward=0.0, reset_index=None):
    return tm.Rollout(problem, [1, 2], ids, thoughts, "answer", reward, reset_index=reset_index)


def test_signal_is_summed_per_thought_and_the_prefix_gets_none():
    p = {"id": "x", "kind": "math", "answer": "1"}
    r = rollout(p, ["a", "b", "c"], [[5, 6], [7], [8, 9, 10]], reset_index=2)  # thought 1 is the prefix
    K = 7  # one left pad, then 6 response tokens
    logp = torch.log(torch.tensor([1.0, 0.5, 0.5, 0.75, 0.5, 0.5, 1.0]))
    mask = torch.tensor([0.0, 0, 0, 1, 1, 1, 1])  # own tokens: thoughts 2 and 3 (T_i = 4)
    per = mechanism.signal_by_thought(r, torch.tensor(2.0), logp, mask)
    # g_it = (|A| / T)(1 - pi) = 0.5 (1 - pi): thought 2: 0.5 * 0.25; thought 3: 0.5 * (0.5 + 0.5 + 0)
    assert per == pytest.approx([0.0, 0.125, 0.5]) and len(logp) == K


def test_signal_lands_on_the_first_wrong_thought():
    world = tw.WorldConfig()
    p = tw.problems("test", 1, world=world)[0]
    thoughts, first = tw.demonstration(p, random.Random(0), tw.hard_pairs(world), world, error_at=2)
    assert first == 2 and tw.first_error(p, thoughts) == 2
    ids = [[i] for i in range(len(thoughts))]  # one token a thought
    r = rollout(p, thoughts, ids)
    n = len(thoughts)
    logp = torch.log(torch.full((n,), 0.5))
    kept = [(r, torch.tensor(-1.0), logp, torch.ones(n))]
    first_share, before, after = mechanism.where_signal_lands(kept)
    assert (first_share, before, after) == pytest.approx((1 / n, 1 / n, (n - 2) / n))


def test_prefix_sharing_counts_pairs_with_the_same_first_thought():
    p = {"id": "x", "kind": "math", "answer": "1"}
    g = grpo.Group(0, "base", [rollout(p, ["a"], [ids]) for ids in ([1, 2], [1, 2], [1, 3], [1, 2])])
    assert mechanism.prefix_sharing([g]) == pytest.approx(3 / 6)  # pairs (0,1), (0,3), (1,3) of 6


def test_interval_is_the_mean_and_a_normal_half_width():
    mean, half = mechanism.interval([1.0, 2.0, 3.0, np.nan])
    assert mean == 2.0 and half == pytest.approx(1.96 * 1.0 / np.sqrt(3))


def test_a_short_run_on_the_warm_start(tmp_path, capsys):
    rows = mechanism.main(["--buffers", "2", "--ref-batches", "2", "--out", str(tmp_path)])
    assert [r["method"] for r in rows] == list(mechanism.METHODS)
    for r in rows:
        assert r["tokens"][0] > 0 and -1 <= r["cos"][0] <= 1 and r["signal"][0] >= 0
        shares = [r[k][0] for k in ("first", "before", "after")]
        assert all(np.isnan(shares)) or sum(shares) == pytest.approx(1.0, abs=1e-6)
    assert 0 <= rows[0]["shared"][0] <= 1  # GRPO's prefix sharing
    assert (tmp_path / "mechanism.md").read_text().count("\n") == 6
    for argv in (["--buffers", "1"], ["--model", "smollm2-135m"]):
        with pytest.raises(SystemExit):
            mechanism.main(argv)
