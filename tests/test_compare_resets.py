"""Tests for compare_resets.py and compare_results.py: the oracle's reset rule on
constructed seeds, the quick comparison, in which every method must learn through
the real grpo/rrpo/srpo code, and the uncertain sweep's verdicts."""

import json
import random

import pytest
from conftest import ScriptedEngine

import compare_resets as cr
import compare_results as results
import config
import rrpo
import thought_mdp as tm
import tiny_world as tw


def test_oracle_resets_at_the_true_first_error_and_records_it(tiny_tokenizer):
    rng, hard = random.Random(1), tw.hard_pairs()
    seeds, truth = [], []
    for i in range(20):
        p = tw.make_problem(rng, i, "t")
        k = rng.randrange(1, len(p["chain"]) + 1)
        thoughts, first = tw.demonstration(p, rng, hard, error_at=k)
        seeds.append(tm.Rollout(p, [], [[0]] * len(thoughts), thoughts, "answer", 0.0))
        truth.append(first)
    chosen = [cr.oracle_index(s, [], None, 0, (k, 0)) for k, s in enumerate(seeds)]
    assert [c.h for c in chosen] == truth and all(isinstance(c, rrpo.ResetIndex) for c in chosen)
    rule = cr.reset_rule("rrpo")
    assert rule.ask(ScriptedEngine(tiny_tokenizer), seeds[0], config.Config(), 0, (0, 0)) == []
    recorded = [rule.choose(s, [], config.Config(), 0, (k, 0)) for k, s in enumerate(seeds)]
    assert [c.h_ref for c in recorded] == truth and all(
        1 <= c.h <= len(s.thought_ids) for c, s in zip(recorded, seeds)
    )


def test_quick_comparison_every_method_learns(tmp_path, capsys):
    """`python compare_resets.py --quick`: one run key x 30 steps per method through
    the real grpo/rrpo/srpo code (in one process per core, --jobs); each must raise
    its greedy held-out pass rate."""
    rows = cr.main(["--quick", "--out", str(tmp_path)])
    assert [r["method"] for r in rows] == cr.METHODS
    for r in rows:
        assert r["final"] >= r["start"] + 0.08, r
    by = {r["method"]: r for r in rows}
    assert by["oracle"]["loc_acc"] == 1.0 and by["rrpo"]["loc_acc"] < by["srpo"]["loc_acc"]
    assert by["grpo"]["rollouts_sampled"] == 30 * 8 * 8 and by["grpo-g4"]["rollouts_sampled"] == 30 * 8 * 4
    # the seed search throws correct rollouts away; an iid base group never samples past its G/2
    assert all(r["rollouts_sampled"] > 30 * 8 * 8 for r in rows if r["method"] in ("rrpo", "srpo", "oracle"))
    assert by["rrpo-iid"]["rollouts_sampled"] <= 30 * 8 * 8
    saved = json.loads((tmp_path / "results.json").read_text())
    keys = {
        "method",
        "run_key",
        "horizon",
        "coverage",
        "start",
        "final",
        "steps",
        "rollouts_sampled",
        "tokens",
    }
    assert len(saved["runs"]) == len(cr.METHODS) and all(keys <= set(r) for r in saved["runs"])
    assert {r["horizon"] for r in saved["runs"]} == {tw.WorldConfig().horizon} and saved["cells"]["default"][
        "coverage"
    ] > 0
    assert (tmp_path / "compare_resets.png").exists() and (tmp_path / "compare_resets.md").exists()
    assert (
        capsys.readouterr()
        .out.strip()
        .splitlines()[-1]
        .startswith("summary (1 cell(s), 1 run key(s) x 30 steps)")
    )
    again = cr.main(["--quick", "--out", str(tmp_path)])  # finished runs are read back, not trained again
    assert [(r["start"], r["final"]) for r in again] == [(r["start"], r["final"]) for r in rows]
    assert "finished earlier" in capsys.readouterr().out
    # a run of an older warm start (another cache name) is not read back
    run = tmp_path / "default" / "grpo-k0"
    assert cr.finished(str(run), 30, tw.WorldConfig())
    (run / "world.txt").write_text("tiny-world-v5-943fcdb8b6")
    assert not cr.finished(str(run), 30, tw.WorldConfig())
    # 31 steps: none finished
    partial = cr.main(["--quick", "--partial", "--steps", "31", "--out", str(tmp_path)])
    assert partial == [] and "0 cell(s)" in capsys.readouterr().out.strip().splitlines()[-1]


def test_sweep_cells_and_jobs():
    """The full sweep: every horizon x coverage cell, 5 run keys, the controls only in the
    named cells; one flag names one cell; shards split the runs without overlap."""
    parser_cells = cr.cells(cr.parse_args([]))
    assert [name for name, _ in parser_cells] == [
        "h4-common",
        "h4-rare",
        "h8-common",
        "h8-rare",
        "h16-common",
        "h16-rare",
    ]
    assert all(w.horizon == int(name[1 : name.index("-")]) for name, w in parser_cells)
    [(name, world)] = cr.cells(cr.parse_args(["--horizon", "8", "--coverage", "rare"]))
    assert name == "h8-rare" and (world.hard_at, world.hard_share) == ("late", 0.3)
    [(name, _)] = cr.cells(cr.parse_args(["--horizon", "8", "--easy-acc", "0.8"]))
    assert name.startswith("world-")
    todo = cr.jobs(parser_cells, cr.METHODS, range(5), {"h4-common", "h16-rare"})
    assert len(todo) == 6 * 5 * len(cr.CORE) + 2 * 5 * len(cr.CONTROLS)
    assert {(c, m) for c, _, m, _ in todo if m in cr.CONTROLS} == {
        (c, m) for c in ("h4-common", "h16-rare") for m in cr.CONTROLS
    }
    shards = [todo[k::3] for k in range(3)]
    assert sorted(map(str, sum(shards, []))) == sorted(map(str, todo))
    assert cr.parse_args(["--jobs", "3"]).jobs == 3 and cr.parse_args([]).jobs == 0  # 0: one per core
    with pytest.raises(SystemExit):
        cr.parse_args(["--jobs", "-1"])


def test_uncertain_sweep_cells_methods_and_noisy_oracle():
    """--sweep uncertain: the regime map's (m, a) cells, every method of the localizer dial
    and the normaliser control in every cell; -const runs the constant normaliser; the
    noisy oracle names the true first error about NOISY_ACC of the time (plus its share
    of the uniform draws), from its own random key."""
    sweep = cr.cells(cr.parse_args(["--sweep", "uncertain"]))
    assert [(w.uncertain, w.uncertain_acc) for _, w in sweep] == cr.UNCERTAIN_CELLS
    assert all(w.horizon == 8 and name == cr.cell_name(w) for name, w in sweep)
    [(name, world)] = cr.cells(cr.parse_args(["--uncertain", "4", "--uncertain-acc", "0.42"]))
    assert name == "h8-m4-a0.42" and world.uncertain == 4
    [(name, world)] = cr.cells(cr.parse_args(["--horizon", "16", "--uncertain", "8", "--loc-scale", "4"]))
    assert name == "h16-m8-a0.5-loc4" and world.loc_scale == 4
    todo = cr.jobs(sweep, cr.UNCERTAIN_METHODS, range(5), None)
    assert len(todo) == len(sweep) * 5 * len(cr.UNCERTAIN_METHODS)
    assert cr.TRAINER["oracle-const"] == ("oracle", ["--loss-normaliser", "constant"])
    assert cr.TRAINER["grpo-const"][1] == ["--loss-normaliser", "constant"]
    assert {"noisy", "oracle-const"} <= set(cr.RESETTING) and "grpo-const" not in cr.RESETTING
    rng, world = random.Random(3), tw.WorldConfig(uncertain=4, uncertain_acc=0.42)
    hard, cfg, hits, seeds = tw.hard_pairs(world), config.Config(), 0, 400
    for i in range(seeds):
        p = tw.make_problem(rng, i, "t", world, hard)
        k = rng.randrange(1, 9)
        thoughts, first = tw.demonstration(p, rng, hard, world, error_at=k)
        seed = tm.Rollout(p, [], [[0]] * len(thoughts), thoughts, "answer", 0.0)
        chosen = cr.reset_rule("noisy").choose(seed, [], cfg, 0, (i, 0))
        assert chosen.h_ref == k and 1 <= chosen.h <= 8
        assert chosen.h == cr.reset_rule("noisy").choose(seed, [], cfg, 0, (i, 0)).h  # its own key
        hits += chosen.h == k
    expected = cr.NOISY_ACC + (1 - cr.NOISY_ACC) / 8
    assert abs(hits / seeds - expected) < 0.08


def test_uncertain_verdicts_set_prediction_beside_outcome(tmp_path):
    """verdicts.md names a measured advantage ahead, behind or tie by its 95% interval and
    says whether the regime map's verdict (prediction.json) agreed; the figure is written.
    The rows are written by hand here: this checks the table's logic, not a learning claim."""

    def run(cell, method, key, final):
        steps, tokens = [0, 10, 20], [0, 1000, 2000]
        return {
            "cell": cell,
            "method": method,
            "run_key": key,
            "p0": 0.25 if cell == "h8-m4-a0.748" else 0.002,
            "uncertain": 4,
            "final": final,
            "curve": {"step": steps, "pass": [0.2, (0.2 + final) / 2, final], "tokens": tokens},
        }

    rows = []
    for key in range(3):
        jitter = 0.01 * key
        for cell in ("h8-m4-a0.748", "h8-m4-a0.236"):
            rows.append(run(cell, "grpo", key, 0.8 + jitter))
            rows.append(run(cell, "oracle", key, 0.6 + 2 * jitter))  # clearly behind
            rows.append(run(cell, "rrpo", key, 0.8 + jitter + (0.05 if key else -0.05)))  # within noise
    for cell, ratio in (
        ("h8-m4-a0.748", {"oracle": 0.79, "rrpo": 0.57}),
        ("h8-m4-a0.236", {"oracle": 1.22, "rrpo": 0.76}),
    ):
        (tmp_path / cell).mkdir()
        (tmp_path / cell / "prediction.json").write_text(json.dumps({"p0": 0.1, "ratio": ratio}))
    adv = results.advantages(rows)
    ratios = results.read_predictions(str(tmp_path), ["h8-m4-a0.748", "h8-m4-a0.236", "h8-m1-a0.322"])
    assert set(ratios) == {"h8-m4-a0.748", "h8-m4-a0.236"}  # a cell without prediction.json is left out
    results.write_verdicts(str(tmp_path), rows, adv, ratios, cr.UNCERTAIN_METHODS)
    results.plot_uncertain(str(tmp_path), rows, adv, ratios, cr.UNCERTAIN_METHODS)
    lines = {
        tuple(c.strip() for c in line.split("|")[1:4:2]): line
        for line in (tmp_path / "verdicts.md").read_text().splitlines()[2:]
    }
    assert "| behind | yes |" in lines["h8-m4-a0.748", "ORACLE"]
    assert "| behind | no |" in lines["h8-m4-a0.236", "ORACLE"]  # the map said ahead
    assert "| tie | no |" in lines["h8-m4-a0.748", "RRPO"]
    assert (tmp_path / "compare_resets.png").stat().st_size > 10_000
    assert (
        results.verdict(1.3) == "ahead"
        and results.verdict(0.95) == "tie"
        and results.verdict(0.7) == "behind"
    )
