"""Tests for compare_resets.py: the oracle's reset rule on constructed seeds, and
the quick comparison, in which every method must learn through the real
grpo/rrpo/srpo code."""

import random

import compare_resets as cr
import rrpo
import thought_mdp as tm
import tiny_world as tw


def test_oracle_resets_at_the_true_first_error_and_records_it():
    rng, hard = random.Random(1), tw.hard_pairs()
    seeds, truth = [], []
    for i in range(20):
        p = tw.make_problem(rng, i, "t")
        k = rng.randrange(1, len(p["chain"]) + 1)
        thoughts, first = tw.demonstration(p, rng, hard, error_at=k)
        seeds.append(tm.Rollout(p, [], [[0]] * len(thoughts), thoughts, "answer", 0.0))
        truth.append(first)
    chosen = cr.oracle_indices(seeds, cfg=None, step=0)
    assert [c.h for c in chosen] == truth and all(isinstance(c, rrpo.ResetIndex) for c in chosen)
    recorded = cr.reset_rule("rrpo", engine=None)(seeds, cfg=cr.grpo.Config(), step=0)
    assert [c.h_ref for c in recorded] == truth and all(1 <= c.h <= len(s.thought_ids) for c, s in zip(recorded, seeds))


def test_quick_comparison_every_method_learns(tmp_path, capsys):
    """`python compare_resets.py --quick`: one seed x 40 steps per method through
    the real grpo/rrpo/srpo code; each must raise its greedy held-out pass rate."""
    rows = cr.main(["--quick", "--out", str(tmp_path)])
    assert [r["method"] for r in rows] == cr.METHODS
    for r in rows:
        assert r["final"] >= r["start"] + 0.08, r
    by = {r["method"]: r for r in rows}
    assert by["oracle"]["loc_acc"] == 1.0 and by["rrpo"]["loc_acc"] < by["srpo"]["loc_acc"]
    assert (tmp_path / "compare_resets.png").exists() and (tmp_path / "compare_resets.md").exists()
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("summary (1 seed(s) x 40 steps)")
    again = cr.main(["--quick", "--out", str(tmp_path)])  # finished runs are read back, not trained again
    assert [(r["start"], r["final"]) for r in again] == [(r["start"], r["final"]) for r in rows]
    assert "finished earlier" in capsys.readouterr().out
