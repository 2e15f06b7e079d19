"""compare_resets.py: GRPO, RRPO, SRPO and oracle resets compared in the classroom world,
where every failed rollout's first error is known (Sec. 3.2, 5.3, App. G).

Theorem 1 says a reset helps most where the improvable state is rare: CPI with
a credit-assignment oracle (CPI-CARO) needs 1/p fewer samples than CPI with
random resets (CPI-RR) at coverage p. In the language-model setting the paper
can only approximate the oracle with self-localization. The classroom world
(tiny_world.py) has the oracle itself: its reset index is the true first error.
This file trains the four methods through the real scripts (grpo.py, rrpo.py,
srpo.py) at the same group size G = 8, beside GRPO with G = 4 (the reset
methods' base group alone), and reports pass rates against steps,
rollouts and tokens, how often each reset lands on the true first error, and
the fix rates from clean and erroneous prefixes.

Paper map
  Sec. 3.2, Thm. 1   the oracle reset: h* = the seed's true first error           oracle_indices()
  Sec. 4.2, Alg. 2   random (RRPO) and self-localized (SRPO) h*, the 1x4 split    rrpo.py, srpo.py
  Sec. 5.3, Fig. 4d  correction rate of clean (h* <= first error) against
                     erroneous prefixes                                        compare()
  App. G             the per-token gradient-signal ratio g_SP / g_base            compare()
  Fig. 3             held-out pass rate against training, mean +- SE over seeds   write_results()

Symbols
  h*          -> ResetIndex.h (rrpo.py); h_ref = the true first error, recorded for every reset method
  fix rate    -> pass rate of a suffix group; "clean" when h* <= first error, else "erroneous"
  METHODS     -> grpo (G = 8 iid rollouts), grpo-g4 (G = 4: the size of the reset methods' base group
                 alone, a control for what their second group adds), rrpo, srpo, oracle

Choices, and why
  * Every run is `grpo.main --demo` (grpo.DEMOS): G = 8 per prompt, the 1x4
    split, full fine-tuning at lr 1e-4, 8 prompts a step, greedy pass rate on
    128 held-out chains every 10 steps. Full fine-tuning instead of LoRA: a
    1M-parameter model has nothing to gain from an adapter; on the first
    version of the warm start, lr 1e-3 made the held-out pass rate fall (0.44
    -> 0.25 in 150 steps).
  * A finished run (its summary.json written) is read back instead of trained
    again, so an interrupted comparison resumes where it stopped.

Run it
  python compare_resets.py --quick        # 1-2 minutes: every method once, 40 steps, one-line summary last
  python compare_resets.py                # 5 methods x 3 seeds x 150 steps (about 15 minutes), figure and table
"""

import argparse
import functools
import json
import os

import numpy as np

import grpo
import rrpo
import srpo
import tiny_world

METHODS = ["grpo", "grpo-g4", "rrpo", "srpo", "oracle"]
RESETTING = ["rrpo", "srpo", "oracle"]  # the methods with a shared-prefix group
TRAINER = {"grpo-g4": ("grpo", ["--group-size", "4"])}  # a method run by another script with other flags


def oracle_indices(seeds, cfg, step):
    """The credit-assignment oracle's reset index: the seed's true first error."""
    return [rrpo.ResetIndex(tiny_world.first_error(s.problem, s.thought_texts) or len(s.thought_ids)) for s in seeds]


def reset_rule(method, engine):
    """The method's h* for a list of seeds, with each seed's true first error
    recorded as the reference step (the records behind Fig. 4b-d and the fix rates)."""
    rule = {"rrpo": rrpo.random_indices, "oracle": oracle_indices,
            "srpo": functools.partial(srpo.self_localized_indices, engine)}[method]

    def choose(seeds, cfg, step):
        chosen = rule(seeds, cfg, step)
        for c, s in zip(chosen, seeds):
            c.h_ref = tiny_world.first_error(s.problem, s.thought_texts)
        return chosen
    return choose


def run_method(method, seed, out, steps):
    """One training run through grpo.main with the demo preset; a run that already
    finished with `steps` steps is read back instead."""
    done = os.path.join(out, "summary.json")
    if os.path.exists(done) and json.load(open(done)).get("steps") == steps:
        print(f"{method} seed {seed}: finished earlier, read from {out}")
    else:
        def buffer(engine, problems, cfg, step):
            return rrpo.reset_buffer(engine, problems, cfg, step, reset_rule(method, engine))
        script, extra = TRAINER.get(method, (method, []))
        grpo.main(["--demo", "--seed", str(seed), "--out", out, "--max-steps", str(steps)] + extra, method=script,
                  buffer_fn=buffer if method in RESETTING else grpo.build_buffer,
                  check=rrpo.check_split if method in RESETTING else None)
    history = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    evals = [json.loads(line) for line in open(os.path.join(out, "eval.jsonl"))]
    return history, evals


def compare(out, seeds, steps):
    """Every method, `seeds` seeds each: G = 8 rollouts per prompt (grpo-g4: 4)."""
    curves, rows = {}, []
    for method in METHODS:
        for seed in seeds:
            history, evals = run_method(method, seed, os.path.join(out, f"{method}-s{seed}"), steps)
            tokens = np.cumsum([0] + [m["tokens/base"] + m["tokens/suffix"] + m["tokens/localize"] for m in history])
            rollouts = np.cumsum([0] + [m["rollouts/generated"] for m in history])
            truths = [dict(r, step=m["step"]) for m in history for r in m.get("reset/records", [])
                      if r.get("h_ref") is not None]  # seeds whose true first error is known
            bins = range(0, steps, 10)  # localization accuracy over training, per 10 steps
            curves.setdefault(method, []).append({
                "step": [e["step"] for e in evals], "pass": [e["pass_rate"] for e in evals],
                "rollouts": [int(rollouts[e["step"]]) for e in evals], "tokens": [int(tokens[e["step"]]) for e in evals],
                "loc_step": [b + 5 for b in bins],
                "loc_acc": [float(np.mean([r["h"] == r["h_ref"] for r in truths if b <= r["step"] < b + 10] or [np.nan]))
                            for b in bins]})
            rows.append({
                "method": method, "seed": seed, "start": evals[0]["pass_rate"], "final": evals[-1]["pass_rate"],
                "signal_ratio": float(np.nanmean([m["signal/ratio"] for m in history])) if method in RESETTING else None,
                "loc_acc": float(np.mean([r["h"] == r["h_ref"] for r in truths])) if truths else None,
                "clean_fix": float(np.mean([r["suffix_pass"] for r in truths if r["h"] <= r["h_ref"]] or [np.nan])),
                "wrong_fix": float(np.mean([r["suffix_pass"] for r in truths if r["h"] > r["h_ref"]] or [np.nan]))})
    return curves, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description="GRPO, RRPO, SRPO and oracle resets in the classroom world")
    parser.add_argument("--out", default="runs/compare-resets", help="output folder (one run folder per method and seed)")
    parser.add_argument("--quick", action="store_true", help="one seed, 40 steps per method (1-2 minutes)")
    parser.add_argument("--steps", type=int, default=0, help="training steps per run (default 150, quick 40)")
    parser.add_argument("--seeds", type=int, default=0, help="seeds per method (default 3, quick 1)")
    args = parser.parse_args(argv)
    steps = args.steps or (40 if args.quick else 150)
    seeds = list(range(args.seeds or (1 if args.quick else 3)))
    os.makedirs(args.out, exist_ok=True)
    curves, rows = compare(args.out, seeds, steps)
    write_results(args.out, curves, rows)
    gain = {m: float(np.mean([r["final"] - r["start"] for r in rows if r["method"] == m])) for m in METHODS}
    print(f"summary ({len(seeds)} seed(s) x {steps} steps): held-out pass-rate gain "
          + ", ".join(f"{m.upper()} {g:+.3f}" for m, g in gain.items()) + f"; table and figure in {args.out}")
    return rows


def write_results(out, curves, rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for method, runs in curves.items():
        for ax, x in zip(axes[0], ("rollouts", "tokens")):
            xs = np.mean([r[x] for r in runs], 0)
            ys = np.array([r["pass"] for r in runs])
            mean, se = ys.mean(0), ys.std(0) / np.sqrt(len(runs))
            ax.plot(xs, mean, "o-", label=method.upper())
            ax.fill_between(xs, mean - se, mean + se, alpha=0.2)
        if method in RESETTING:  # (c) how often the reset lands on the true first error
            acc = np.array([r["loc_acc"] for r in runs])
            axes[1, 0].plot(runs[0]["loc_step"], np.nanmean(acc, 0), "o-", label=method.upper(), color=f"C{METHODS.index(method)}")
    for ax, x in zip(axes[0], ("rollouts", "generated tokens (localization included)")):
        ax.set_xlabel(x)
        ax.set_ylabel("held-out pass rate (greedy)")
        ax.legend()
    axes[1, 0].set_xlabel("training step")
    axes[1, 0].set_ylabel("reset index = true first error")
    axes[1, 0].set_ylim(0, 1.05)
    axes[1, 0].legend()
    for k, (key, label) in enumerate((("clean_fix", "clean prefix (h* <= first error)"),  # (d) the analogue of Fig. 4d
                                      ("wrong_fix", "erroneous prefix (h* > first error)"))):
        vals = [[r[key] for r in rows if r["method"] == m and r[key] == r[key]] for m in RESETTING]  # NaN-free
        axes[1, 1].bar(np.arange(len(RESETTING)) + 0.4 * k, [np.mean(v) if v else 0 for v in vals], width=0.4, label=label)
    axes[1, 1].set_xticks(np.arange(len(RESETTING)) + 0.2, [m.upper() for m in RESETTING])
    axes[1, 1].set_ylabel("suffix pass rate (fix rate)")
    axes[1, 1].legend()
    fig.suptitle("classroom world: held-out pass rate (mean ± SE over seeds), localization accuracy, fix rates")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "compare_resets.png"), dpi=120)
    plt.close(fig)
    lines = ["| method | start | final | gain | signal ratio | localization accuracy | fix rate clean | fix rate erroneous |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in METHODS:
        rs = [r for r in rows if r["method"] == m]

        def cell(key, rs=rs):
            vals = [r[key] for r in rs if r[key] is not None and r[key] == r[key]]
            return f"{np.mean(vals):.3f}" + (f" ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 else "") if vals else "-"
        gain = [r["final"] - r["start"] for r in rs]
        lines.append(f"| {m.upper()} | {cell('start')} | {cell('final')} | {np.mean(gain):+.3f} | {cell('signal_ratio')} | "
                     f"{cell('loc_acc')} | {cell('clean_fix')} | {cell('wrong_fix')} |")
    with open(os.path.join(out, "compare_resets.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "compare_resets.json"), "w") as fh:
        json.dump({"rows": rows, "curves": curves}, fh, indent=2)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
