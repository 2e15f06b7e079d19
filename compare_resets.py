"""compare_resets.py: GRPO, RRPO, SRPO and oracle resets compared in the classroom world,
where every failed rollout's first error is known, over horizon and coverage
(Sec. 3.1-3.2, 5.3, App. G).

Theorem 1 says a reset helps most where the improvable state is rare: CPI with
a credit-assignment oracle (CPI-CARO) needs 1/p fewer samples than CPI with
random resets (CPI-RR) at coverage p. In the language-model setting the paper
can only approximate the oracle with self-localization. The classroom world
(tiny_world.py) has the oracle itself: its reset index is the true first error.
This file trains the methods through the real scripts (grpo.py, rrpo.py,
srpo.py) at the same group size G = 8, in a sweep of worlds: chains of H in
{4, 8, 16} steps, crossed with a hard decision that is common and early (step
2) or rare and late (step H). Per cell it measures the coverage, and per run
pass rates against steps, sampled rollouts and tokens, how often each reset
lands on the true first error, and the fix rates from clean and erroneous
prefixes. Controls: GRPO with G = 4 (the reset methods' base group alone) and
RRPO with an iid base group (the first G/2 rollouts, the seed among them).

A second sweep (--sweep uncertain) asks where the regime map (regime_map.py)
says resets pay: chains of H = 8 with m in {1, 4, 8} uncertain steps, each right
with probability a at the sampling temperature, so that the start pass rate p0
runs from about 0.3 down to about 0.001; the localizer dial from random (RRPO)
through the model itself (SRPO) and a noisy oracle (right half the time) to the
oracle; GRPO with G = 8 and G = 4; and the loss-normaliser control (-const: a
constant normaliser instead of each rollout's own length) for GRPO and the
oracle. `--predict` builds and measures its worlds and writes the regime map's
prediction per cell (prediction.md) before any run.

Paper map
  Sec. 3.1, Thm. 1   coverage p of the improvable state, measured per cell        world_report()
  Sec. 3.2, Thm. 1   the oracle reset: h* = the seed's true first error           oracle_index()
  Sec. 4.2, Alg. 2   random (RRPO) and self-localized (SRPO) h*, the 1x4 split    rrpo.py, srpo.py
  Sec. 5.3, Fig. 4d  the reset records behind the fix rates of clean and
                     erroneous prefixes (h_ref, the true first error)          reset_rule()
  Sec. 5.3, App. G   fix rates, the gradient-signal ratio, Fig. 3's curves     compare_results.py

Symbols
  h*          -> ResetIndex.h (rrpo.py); h_ref = the true first error, recorded for every reset method
  p-hat       -> share of the warm start's rollouts, on problems with a hard step, that reach it clean
  p           -> Theorem 1's time-averaged coverage: the share of all rollouts reaching a hard step clean, / H
  fix rate    -> pass rate of a suffix group; "clean" when h* <= first error, else "erroneous"
  advantage   -> a method's held-out pass rate minus GRPO's with the same run key, at equal steps or
                 at equal generated tokens (interpolated), mean and 95% interval over run keys
  METHODS     -> grpo (G = 8), grpo-g4 and rrpo-iid (controls), rrpo, srpo, oracle
  UNCERTAIN_METHODS -> grpo, grpo-g4, rrpo, srpo, noisy (the oracle half the time, else a uniform
                 step), oracle, grpo-const and oracle-const (the constant loss normaliser)
  p0          -> the start pass rate at the sampling temperature, measured (warm_start.step_report)

Choices, and why
  * Every run is `grpo.main --demo` (config.DEMOS) with the cell's world: G = 8
    per prompt, the 1x4 split, full fine-tuning at lr 1e-4, 8 prompts a step,
    greedy pass rate on 128 held-out chains every 10 steps. Full fine-tuning
    instead of LoRA: a 1M-parameter model has nothing to gain from an adapter.
  * 60 steps per run and the controls in two cells only: the budget of a
    sweep of 3 hours on 2 cores with 5 run keys per cell (100 steps would take
    about 4 hours).
  * The uncertain sweep: 5 cells x 8 methods x 5 run keys x 40 steps (48 min on
    2 cores in two shards), every method in every cell, and its pass rate
    sampled at the training temperature (2 rollouts per held-out chain,
    EVAL_SAMPLES): with a < 0.5 a greedy pass rate starts at 0, with a > 0.5
    near 1. The greedy one is kept beside it (greedy_start, greedy_final).
  * A finished run (its summary.json written) is read back instead of trained
    again, so an interrupted sweep resumes where it stopped. The runs are split
    over one process per core (`--jobs`, each one `--shard K/N` of them, sharing
    the cores through cpu_share.py), which on 2 cores took the quick comparison
    from 106 s to 84 s, the same table; a thread count changes float rounding only.

Run it
  python compare_resets.py --quick          # the default world, every method once, 30 steps (about 1.5 min)
  python compare_resets.py --horizon 8 --coverage rare --run-keys 5   # one cell
  python compare_resets.py                  # the sweep: 6 cells x 4 methods x 5 run keys (+ controls)
  python compare_resets.py --partial        # results, table and figure from the runs finished so far
  python compare_resets.py --sweep uncertain --predict --out runs/uncertain   # the worlds and the prediction
  python compare_resets.py --sweep uncertain --out runs/uncertain             # the uncertain sweep
  python compare_resets.py --shard 0/2 &    # by hand: half of the runs in each process,
  python compare_resets.py --shard 1/2; wait
  python compare_resets.py              # then the results
Results (written by compare_results.py): DIR/results.json (`runs`: one object per cell, method
and run key), DIR/compare_resets.md, .png.
"""

import argparse
import dataclasses
import json
import os
import random
import subprocess
import sys
import time

import numpy as np

import compare_results
import cpu_share
import engines
import grpo
import rrpo
import srpo
import tiny_world
import warm_start

CORE = ["grpo", "rrpo", "srpo", "oracle"]
CONTROLS = ["grpo-g4", "rrpo-iid"]  # G = 4 (the reset methods' base group alone); RRPO with an iid base group
METHODS = ["grpo", "grpo-g4", "rrpo", "rrpo-iid", "srpo", "oracle"]
# the uncertain-steps sweep (--sweep uncertain): the localizer dial from random (RRPO) through the
# model (SRPO) and a noisy oracle to the oracle, and the loss-normaliser control ("-const": every
# rollout's token sum divided by the same constant instead of its own length, grpo.pg_loss)
UNCERTAIN_METHODS = ["grpo", "grpo-g4", "rrpo", "srpo", "noisy", "oracle", "grpo-const", "oracle-const"]
# the uncertain sweep's measure: the held-out pass rate sampled at the training temperature, 2
# rollouts per chain (a greedy pass rate there starts at 0 where a < 0.5 and near 1 where a > 0.5)
EVAL_SAMPLES = 2
NOISY_ACC = 0.5  # the noisy oracle: the true first error with this probability, else a uniform step
RESETTING = ["rrpo", "rrpo-iid", "srpo", "oracle", "noisy", "oracle-const"]  # shared-prefix groups
CONSTANT = ["--loss-normaliser", "constant"]
TRAINER = {
    "grpo-g4": ("grpo", ["--group-size", "4"]),
    "rrpo-iid": ("rrpo", ["--base-group", "iid"]),
    "grpo-const": ("grpo", CONSTANT),
    "oracle-const": ("oracle", CONSTANT),
}
# The sweep: horizon H crossed with where the hard decision sits and how often it is there
HORIZONS = (4, 8, 16)
COVERAGE = {
    "common": dict(hard_at="early", hard_share=0.6),  # a multiplication at step 2, 60% of them hard
    "rare": dict(hard_at="late", hard_share=0.3),  # a multiplication at step H, 30% of them hard
}
# The uncertain-steps sweep (--sweep uncertain): H = 8 chains with m uncertain steps, each right with
# probability a at the sampling temperature, taken from the regime map's cells (regime_map.py) so
# that the start pass rate spans about 0.3 down to about 0.003
# (m, a); (1, 0.032) was built and predicted, then left out for the budget (its warm start came
# out at a = 0.011, and its prediction is the (1, 0.322) cell's)
UNCERTAIN_CELLS = [(1, 0.322), (4, 0.748), (4, 0.42), (4, 0.236), (8, 0.484)]
UNCERTAIN_STEPS = 40  # the uncertain sweep's training steps per run (the budget of one session)
SWEEPS = ("horizon", "uncertain")


def oracle_index(seed, answers, cfg, step, key):
    """The credit-assignment oracle's reset index: the seed's true first error."""
    return rrpo.ResetIndex(tiny_world.first_error(seed.problem, seed.thought_texts) or len(seed.thought_ids))


def noisy_index(seed, answers, cfg, step, key):
    """A noisy credit-assignment oracle: the seed's true first error with probability
    NOISY_ACC, else a uniform step (which may be the true one), drawn from the seed's
    own random key (the regime map's "noisy" rule, regime_map.py)."""
    draw = random.Random(grpo.step_key(cfg, step, KEY_NOISY, *key))
    if draw.random() < NOISY_ACC:
        return oracle_index(seed, answers, cfg, step, key)
    return rrpo.ResetIndex(draw.randint(1, len(seed.thought_ids)))


KEY_NOISY = 7  # the noisy oracle's draws: a kind of step key that grpo.py's kinds (0-6) never use
RULES = {
    "rrpo": rrpo.RANDOM,
    "oracle": rrpo.ResetRule(choose=oracle_index),
    "noisy": rrpo.ResetRule(choose=noisy_index),
    "srpo": srpo.SELF_LOCALIZED,
}


def reset_rule(method):
    """The method's reset rule, with the seed's true first error recorded as the
    reference step (the records behind Fig. 4b-d and the fix rates)."""
    rule = RULES[method.split("-")[0]]

    def choose(seed, answers, cfg, step, key):
        chosen = rule.choose(seed, answers, cfg, step, key)
        chosen.h_ref = tiny_world.first_error(seed.problem, seed.thought_texts)
        return chosen

    return dataclasses.replace(rule, choose=choose)


def cell_name(world):
    """A cell of the uncertain-steps sweep by its knobs: h8-m4-a0.42 (h16-m8-a0.65-loc4 with
    four times the localization examples)."""
    name = f"h{world.horizon}-m{world.uncertain}-a{world.uncertain_acc:g}"
    return name + (f"-loc{world.loc_scale:g}" if world.loc_scale != 1 else "")


def cells(args):
    """[(name, WorldConfig)]: the whole sweep (--sweep), the default world (--quick), or
    the one cell the world flags (--horizon, --coverage, --uncertain, ...) describe."""
    knobs = grpo.tm.given(args, tiny_world.WorldConfig)
    if args.coverage:
        knobs = {**COVERAGE[args.coverage], **knobs}
    if not knobs:
        if args.quick:
            return [("default", tiny_world.WorldConfig())]
        if args.sweep == "uncertain":
            worlds = [tiny_world.WorldConfig(uncertain=m, uncertain_acc=a) for m, a in UNCERTAIN_CELLS]
            return [(cell_name(w), w) for w in worlds]
        return [
            (f"h{h}-{c}", tiny_world.WorldConfig(horizon=h, **COVERAGE[c]))
            for h in HORIZONS
            for c in COVERAGE
        ]
    world = tiny_world.check(tiny_world.WorldConfig(**knobs))
    if world.uncertain:
        return [(cell_name(world), world)]
    name = next(
        (
            f"h{world.horizon}-{c}"
            for c, k in COVERAGE.items()  # a sweep cell keeps its sweep name
            if world == tiny_world.WorldConfig(horizon=world.horizon, **k)
        ),
        "world-" + world.key(),
    )
    return [(name, world)]


def run_method(method, key, out, steps, world):
    """One training run through grpo.main with the demo preset on `world`; a run
    that already finished with `steps` steps is read back instead."""
    if finished(out, steps, world):
        print(f"{method} run key {key}: finished earlier, read from {out}")
    else:

        def buffer(engine, problems, cfg, step):
            return rrpo.reset_buffer(engine, problems, cfg, step, reset_rule(method))

        # the caps follow the world's horizon (config.parse_config)
        script, extra = TRAINER.get(method, (method, []))
        grpo.main(
            [
                "--demo",
                "--run-key",
                str(key),
                "--out",
                out,
                "--max-steps",
                str(steps),
                "--model",
                world.name(),
                "--data",
                world.name("tiny-world-train"),
                "--eval-data",
                world.name(),
            ]
            + (["--eval-samples", str(EVAL_SAMPLES)] if world.uncertain else [])
            + extra,
            method=script,
            buffer_fn=buffer if method in RESETTING else grpo.build_buffer,
            check=rrpo.check_split if method in RESETTING else None,
        )
        with open(os.path.join(out, "world.txt"), "w") as fh:  # which warm start the run trained
            fh.write(world_id(world))
    history = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    evals = [json.loads(line) for line in open(os.path.join(out, "eval.jsonl"))]
    return history, evals


def world_id(world):
    """The world's model as built now: its cache folder's name (the warm start's version and the knobs)."""
    return os.path.basename(tiny_world.cache_dir(world))


def finished(out, steps, world):
    """Whether the run folder holds a run that finished `steps` steps (its summary.json)
    from this world's current warm start (a run of an older warm start is run again)."""
    done, marker = os.path.join(out, "summary.json"), os.path.join(out, "world.txt")
    return (
        os.path.exists(done)
        and json.load(open(done)).get("steps") == steps
        and os.path.exists(marker)
        and open(marker).read().strip() == world_id(world)
    )


def world_report(cell_dir, world):
    """The cell's measured coverage p-hat, start pass rate and localization accuracy
    (warm_start.warm_start_report), computed once and kept in the cell's folder."""
    path = os.path.join(cell_dir, "world.json")
    if not os.path.exists(path) or json.load(open(path)).get("model") != world_id(world):
        os.makedirs(cell_dir, exist_ok=True)
        engine = engines.HFEngine(*warm_start.load(world), batch_size=64)
        with open(path + ".part", "w") as fh:
            report = {**warm_start.warm_start_report(engine, world, n=128), "model": world_id(world)}
            if world.uncertain:  # each step's success rate at the sampling temperature, measured
                report["steps"] = warm_start.step_report(engine, world, n=128)
            json.dump(report, fh, indent=2)
        os.replace(path + ".part", path)
    return json.load(open(path))


# the regime map's rule for each method of the uncertain sweep (GRPO's tabular rollouts all
# have H steps, so its normaliser is constant already: GRPO-CONST predicts GRPO)
MAP_RULE = {
    "rrpo": "rrpo",
    "noisy": "noisy",
    "oracle": "oracle",
    "oracle-const": "oracle-const",
    "grpo-const": "grpo",
}


def prediction(world, report, keys=4):
    """The regime map's prediction for a cell of the uncertain sweep: GRPO's generated steps
    to a 0.8 pass rate over each method's (above 1: the method is cheaper), on a tabular
    chain with the cell's horizon, m and the per-step rates measured on its warm start
    (uncertain and easy steps at the sampling temperature, warm_start.step_report)."""
    import regime_map

    steps = report["steps"]
    easy = steps["easy_acc"] if steps["easy_acc"] is not None else 1.0  # None: every step uncertain
    chain = regime_map.Chain(world.horizon, world.uncertain, steps["uncertain_acc"], easy)
    cost = {
        r: float(np.median([regime_map.run(r, chain, k) for k in range(keys)]))
        for r in set(MAP_RULE.values())
    }
    return {
        "p0": chain.p0(),
        "ratio": {m: cost["grpo"] / cost[r] for m, r in MAP_RULE.items()},
    }


def predictions(out, sweep):
    """The regime map's prediction for every cell of an uncertain sweep, from each cell's
    built warm start (world.json) and kept as prediction.json; the table, prediction.md,
    is what the sweep pre-registers before any run."""
    table = {}
    for name, world in sweep:
        cell_dir = os.path.join(out, name)
        report = world_report(cell_dir, world)
        path = os.path.join(cell_dir, "prediction.json")
        if not os.path.exists(path) or json.load(open(path)).get("model") != world_id(world):
            pred = {**prediction(world, report), "model": world_id(world)}
            with open(path + ".part", "w") as fh:
                json.dump(pred, fh, indent=1)
            os.replace(path + ".part", path)
        table[name] = (world, report, json.load(open(path)))
    shown = list(MAP_RULE)
    lines = [
        "| cell | m | a asked | a measured | easy measured | p0 measured | p0 tabular | "
        + " | ".join(m.upper() for m in shown)
        + " |",
        "|" + " --- |" * (7 + len(shown)),
    ]
    for name, (world, report, pred) in table.items():
        steps = report["steps"]
        lines.append(
            f"| {name} | {world.uncertain} | {world.uncertain_acc:g} | {steps['uncertain_acc']:.3f} | "
            f"{steps['easy_acc'] or float('nan'):.3f} | {steps['pass_rate']:.3f} | {pred['p0']:.3f} | "
            + " | ".join(
                f"{pred['ratio'][m]:.2f} ({compare_results.verdict(pred['ratio'][m])})" for m in shown
            )
            + " |"
        )
    with open(os.path.join(out, "prediction.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return table


def jobs(sweep, methods, keys, controls):
    """Every (cell, world, method, key) of the comparison, cell by cell; the controls
    run only in the cells `controls` names (all when None)."""
    return [
        (name, world, m, s)
        for name, world in sweep
        for s in keys
        for m in methods
        if m not in CONTROLS or controls is None or name in controls
    ]


def parse_args(argv=None):
    """The command line, checked: a bad world knob or --shard is refused in one line."""
    parser = argparse.ArgumentParser(
        description="GRPO, RRPO, SRPO and oracle resets in the classroom world, over horizon and coverage"
    )
    parser.add_argument(
        "--out", default="runs/compare-resets", help="output folder (one folder per cell, one per run)"
    )
    parser.add_argument("--quick", action="store_true", help="the default world only, one run key, 30 steps")
    parser.add_argument("--steps", type=int, default=0, help="training steps per run (default 60, quick 30)")
    parser.add_argument(
        "--run-keys",
        "--seeds",
        type=int,
        default=0,
        help="run keys per method (default 5, quick 1; --seeds: the old name, deprecated)",
    )
    parser.add_argument(
        "--sweep",
        choices=SWEEPS,
        default="horizon",
        help="which sweep to run without world flags: horizon x coverage (the first one), or "
        "uncertain (m uncertain steps at start pass rates from about 0.3 to 0.001, "
        "with the localizer dial and the normaliser control)",
    )
    parser.add_argument(
        "--coverage",
        choices=sorted(COVERAGE),
        help="one cell: where the hard decision sits "
        "(common: step 2, 60%% of the multiplications hard; rare: step H, 30%%)",
    )
    parser.add_argument(
        "--controls",
        default="h4-common,h16-rare",
        help="cells that also run the controls (GRPO G=4, RRPO with an iid base group): "
        "comma-separated cell names, or all",
    )
    parser.add_argument(
        "--partial", action="store_true", help="train nothing: results from the runs finished so far"
    )
    parser.add_argument(
        "--predict",
        action="store_true",
        help="train nothing: build the uncertain sweep's worlds, measure them and write the "
        "regime map's prediction per cell (prediction.md), the pre-registration",
    )
    parser.add_argument(
        "--shard",
        default="",
        help="K/N: train only every N-th run from the K-th (0-based), "
        "for N processes side by side; a last run without --shard writes the results",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="processes side by side, each training every N-th run (--shard k/N), then this "
        "one writes the results; default one per core, at most one per run left; 1: all in "
        "this process",
    )
    # the world's knobs: --horizon, --hard-at, ...
    tiny_world.add_flags(parser)
    args = parser.parse_args(argv)
    try:
        args.cells = cells(args)
    except ValueError as e:
        parser.error(str(e))
    if args.predict and not all(world.uncertain for _, world in args.cells):
        parser.error("--predict is for the uncertain sweep (--sweep uncertain or --uncertain M)")
    args.shard_k, args.shard_n = 0, 1
    if args.shard:
        try:
            args.shard_k, args.shard_n = (int(x) for x in args.shard.split("/"))
            assert 0 <= args.shard_k < args.shard_n
        except (ValueError, AssertionError):
            parser.error(f"--shard takes K/N with 0 <= K < N, got {args.shard!r}")
    if args.jobs < 0:
        parser.error(f"--jobs takes a count >= 1 (0: one per core), got {args.jobs}")
    return args


def run_in_processes(argv, n):
    """Train the runs in n processes side by side (this command with --shard k/n each);
    cpu_share.py gives each its share of the cores. A failed process stops here, its
    finished runs kept for the next attempt."""
    command = [sys.executable, os.path.abspath(__file__), *argv, "--jobs", "1"]
    print(f"training in {n} processes side by side (--jobs {n}; --jobs 1 trains in this one)")
    procs = [subprocess.Popen(command + ["--shard", f"{k}/{n}"]) for k in range(n)]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(
            f"compare_resets: a training process failed (exit codes {codes}); run again to resume"
        )


def main(argv=None):
    args = parse_args(argv)
    uncertain = all(world.uncertain for _, world in args.cells)
    steps = args.steps or (30 if args.quick else UNCERTAIN_STEPS if uncertain else 60)
    keys = list(range(args.run_keys or (1 if args.quick else 5)))
    sweep = args.cells
    methods = UNCERTAIN_METHODS if uncertain else METHODS
    controls = (
        None if uncertain or args.controls == "all" or len(sweep) == 1 else set(args.controls.split(","))
    )
    if args.predict:
        return predictions(args.out, sweep)
    todo = jobs(sweep, methods, keys, controls)[args.shard_k :: args.shard_n]
    left = [
        job
        for job in todo
        if not finished(os.path.join(args.out, job[0], f"{job[2]}-k{job[3]}"), steps, job[1])
    ]
    n = args.jobs or min(cpu_share.cores(), len(left))
    if n > 1 and not (args.shard or args.partial):
        run_in_processes(sys.argv[1:] if argv is None else list(argv), n)
    started = time.perf_counter()
    results = []
    for i, (name, world, method, key) in enumerate(todo):
        out = os.path.join(args.out, name, f"{method}-k{key}")
        if args.partial and not finished(out, steps, world):
            continue
        print(
            f"[{i + 1}/{len(todo)}] cell {name} ({world.name()}), {method}, run key {key}, "
            f"{(time.perf_counter() - started) / 60:.1f} min so far"
        )
        history, evals = run_method(method, key, out, steps, world)
        results.append((name, world, method, key, history, evals))
    print(f"{len(results)} runs ready ({len(todo)} asked) in {(time.perf_counter() - started) / 60:.1f} min")
    if args.shard:
        return []
    sweep = [(name, world) for name, world in sweep if any(r[0] == name for r in results)]
    reports = {name: world_report(os.path.join(args.out, name), world) for name, world in sweep}
    rows = [
        compare_results.summarize(m, s, name, world, reports[name], h, e)
        for name, world, m, s, h, e in results
    ]
    if not rows:
        print(f"summary (0 cell(s)): no run of {steps} steps has finished in {args.out}")
        return []
    compare_results.write_results(args.out, rows, reports, methods)
    gain = {
        m: float(np.mean([r["final"] - r["start"] for r in rows if r["method"] == m]))
        for m in methods
        if any(r["method"] == m for r in rows)
    }
    print(
        f"summary ({len(sweep)} cell(s), {len(keys)} run key(s) x {steps} steps): held-out pass-rate gain "
        + ", ".join(f"{m.upper()} {g:+.3f}" for m, g in gain.items())
        + f"; results, table and figure in {args.out}"
    )
    return rows


if __name__ == "__main__":
    main()
