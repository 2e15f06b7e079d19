"""compare_results.py: the classroom comparison's results, from the histories of its runs
(compare_resets.py): each run as a row, the advantage over GRPO paired by run key
with a 95% interval, the table, results.json, the uncertain sweep's outcome
against its pre-registered prediction, and the figures (Sec. 3.2, 5.3, App. G).

compare_resets.py trains the runs and measures the worlds; this file only reads:
a run's per-step metrics and evaluations in, numbers, tables and figures out.

Paper map
  Sec. 3.2, Thm. 1   the advantage over GRPO against coverage p, per cell          advantages(), plot()
  Sec. 5.3, Fig. 4d  correction rate of clean (h* <= first error) against
                     erroneous prefixes                                        summarize()
  App. G             the per-token gradient-signal ratio g_SP / g_base            summarize()
  Fig. 3             held-out pass rate against training, per cell                plot()
  (ours)             the regime map's prediction against the measured outcome     write_verdicts(),
                                                                               plot_uncertain()

Symbols
  row         -> one run in results.json (summarize): pass rates against steps, sampled rollouts
                 and tokens, where its resets landed, fix rates, all-equal group rates
  h*, h_ref   -> the reset index and the seed's true first error (compare_resets.reset_rule)
  advantage   -> a method's held-out pass rate minus GRPO's with the same run key, at equal steps
                 or at equal generated tokens, mean and 95% interval over run keys
  T95         -> Student t's 97.5% quantile by degrees of freedom (1.96 past 9)
  verdict     -> a predicted cost ratio as a sign: ahead (> 1.1), behind (< 0.9), else tie
  outcome     -> a measured advantage as a sign: ahead or behind when its 95% interval
                 excludes 0, else tie

Choices
  * Advantages are paired: each run against GRPO's run with the same run key,
    which draws the same prompts step by step in every method (grpo.py's
    epoch order), so a hard draw counts against both.
  * At equal tokens, every pair of a cell is compared at the budget all the
    cell's runs reached (the smallest final token count), the pass rate
    interpolated linearly between evaluations.
  * One run key gives a mean without an interval, shown "-" in the interval's
    place; a verdict or outcome needs the interval.
  * A run of the uncertain sweep is measured by its pass rate sampled at the
    training temperature (compare_resets.EVAL_SAMPLES), the greedy one kept
    beside it; the horizon sweep's by the greedy pass rate.

Run it
  python compare_resets.py --partial     # results, table and figure from the runs finished so far
  python compare_resets.py --quick       # trains six runs, then writes its results through this file
Results: DIR/results.json, DIR/compare_resets.md, DIR/compare_resets.png, and for the uncertain
sweep DIR/verdicts.md.
"""

import json
import os

import numpy as np

# Student t, 97.5%, by degrees of freedom
T95 = {1: 12.71, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def summarize(method, run_key, cell, world, report, history, evals):
    """One run as a row of results.json: pass rates against steps, sampled rollouts and
    tokens; where its resets landed; fix rates; all-equal group rates."""
    tokens = np.cumsum([0] + [m["tokens/base"] + m["tokens/suffix"] + m["tokens/localize"] for m in history])
    rollouts = np.cumsum([0] + [m["rollouts/generated"] for m in history])
    truths = [r for m in history for r in m.get("reset/records", []) if r.get("h_ref") is not None]
    measure = "pass_rate_sampled" if world.uncertain else "pass_rate"  # the uncertain sweep: sampled
    start, steps = evals[0][measure], len(history)
    threshold = start + (1 - start) / 2  # half-way from the start to a perfect pass rate
    reached = next((e["step"] for e in evals if e[measure] >= threshold), None)

    def rate(key):
        vals = [m[key] for m in history if m.get(key) == m.get(key) and m.get(key) is not None]
        return float(np.mean(vals)) if vals else None

    def mean(values):
        return float(np.mean(values)) if values else None

    clean = [r for r in truths if r["h"] <= r["h_ref"]]  # reset at or before the true first error
    return {
        "cell": cell,
        "world": world.name(),
        "method": method,
        "run_key": run_key,
        "horizon": world.horizon,
        "hard_at": world.hard_at,
        "hard_share": world.hard_share,
        "uncertain": world.uncertain,
        "uncertain_acc": world.uncertain_acc,
        # the start pass rate at the sampling temperature (the regime map's p0), measured
        "p0": report["steps"]["pass_rate"] if "steps" in report else report["pass_rate"],
        "coverage": report["coverage"],
        "coverage_all": report["coverage_all"],
        "p_theorem": report["coverage_all"] / world.horizon,
        "measure": measure,
        "start": start,
        "final": evals[-1][measure],
        "greedy_start": evals[0]["pass_rate"],
        "greedy_final": evals[-1]["pass_rate"],
        "steps": steps,
        "rollouts_sampled": int(rollouts[-1]),
        "tokens": int(tokens[-1]),
        "threshold": threshold,
        "steps_to": reached,
        "rollouts_to": int(rollouts[reached]) if reached is not None else None,
        "tokens_to": int(tokens[reached]) if reached is not None else None,
        "clean_reset": mean([r["h"] <= r["h_ref"] for r in truths]),
        "loc_acc": mean([r["h"] == r["h_ref"] for r in truths]),
        "clean_fix": mean([r["suffix_pass"] for r in clean]),
        "wrong_fix": mean([r["suffix_pass"] for r in truths if r["h"] > r["h_ref"]]),
        "base_all_equal": rate("groups/base_all_equal"),
        "suffix_all_equal": rate("groups/suffix_all_equal"),
        "signal_ratio": rate("signal/ratio"),
        "curve": {
            "step": [e["step"] for e in evals],
            "pass": [e[measure] for e in evals],
            "rollouts": [int(rollouts[e["step"]]) for e in evals],
            "tokens": [int(tokens[e["step"]]) for e in evals],
        },
    }


def interval(values):
    """Mean and the half-width of its 95% interval (Student t over run keys); None when empty."""
    v = np.array([x for x in values if x is not None and x == x], dtype=float)
    if len(v) == 0:
        return None, None
    return float(v.mean()), float(T95.get(len(v) - 1, 1.96) * v.std(ddof=1) / np.sqrt(len(v))) if len(
        v
    ) > 1 else None


def at_tokens(run, budget):
    """The run's held-out pass rate at `budget` generated tokens (linear in between evaluations)."""
    return float(np.interp(budget, run["curve"]["tokens"], run["curve"]["pass"]))


def advantages(rows):
    """Per cell and method: the paired (same run key) advantage over GRPO in final pass
    rate at equal steps, and at equal tokens (the budget every run of the cell reached)."""
    out = {}
    for cell in dict.fromkeys(r["cell"] for r in rows):
        rs = [r for r in rows if r["cell"] == cell]
        base = {r["run_key"]: r for r in rs if r["method"] == "grpo"}
        budget = min(r["curve"]["tokens"][-1] for r in rs)
        for m in dict.fromkeys(r["method"] for r in rs):
            pairs = [(r, base[r["run_key"]]) for r in rs if r["method"] == m and r["run_key"] in base]
            out[cell, m] = {
                "steps": interval([r["final"] - g["final"] for r, g in pairs]),
                "tokens": interval([at_tokens(r, budget) - at_tokens(g, budget) for r, g in pairs]),
                "budget": budget,
            }
    return out


def fmt(mean_ci, digits=3, sign=False):
    mean, ci = mean_ci
    if mean is None:
        return "-"
    text = f"{mean:+.{digits}f}" if sign else f"{mean:.{digits}f}"
    return text + (f" ± {ci:.{digits}f}" if ci is not None else "")


def write_results(out, rows, reports, methods):
    """The table (compare_resets.md), results.json and the figure (with verdicts.md for the
    uncertain sweep) from the rows of `methods`' runs (summarize) and the cells' reports."""
    adv = advantages(rows)
    lines = [
        "| cell | p-hat / p | method | start | final | vs GRPO, equal steps | vs GRPO, equal tokens | "
        "steps / rollouts / tokens to threshold | clean resets | localization | fix clean | fix erroneous | "
        "all-equal base / suffix |",
        "|" + " --- |" * 13,
    ]
    for cell in dict.fromkeys(r["cell"] for r in rows):
        for m in [m for m in methods if any(r["cell"] == cell and r["method"] == m for r in rows)]:
            rs = [r for r in rows if r["cell"] == cell and r["method"] == m]

            def col(key, rs=rs):
                return fmt(interval([r[key] for r in rs]))

            hit = [r for r in rs if r["steps_to"] is not None]
            to = (
                f"{np.mean([r['steps_to'] for r in hit]):.0f} / "
                f"{np.mean([r['rollouts_to'] for r in hit]):.0f} / "
                f"{np.mean([r['tokens_to'] for r in hit]) / 1e3:.0f}k ({len(hit)}/{len(rs)})"
                if hit
                else f"- (0/{len(rs)})"
            )
            eq = "-" if m == "grpo" else fmt(adv[cell, m]["steps"], sign=True)
            et = "-" if m == "grpo" else fmt(adv[cell, m]["tokens"], sign=True)
            lines.append(
                f"| {cell} | {rs[0]['coverage']:.2f} / {rs[0]['p_theorem']:.3f} | {m.upper()} | "
                f"{col('start')} | {col('final')} | "
                f"{eq} | {et} | {to} | {col('clean_reset')} | {col('loc_acc')} | {col('clean_fix')} | "
                f"{col('wrong_fix')} | {fmt(interval([r['base_all_equal'] for r in rs]), 2)} / "
                f"{fmt(interval([r['suffix_all_equal'] for r in rs]), 2)} |"
            )
    with open(os.path.join(out, "compare_resets.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    summary = [
        {
            "cell": c,
            "method": m,
            "advantage_steps": a["steps"],
            "advantage_tokens": a["tokens"],
            "token_budget": a["budget"],
        }
        for (c, m), a in adv.items()
    ]
    with open(os.path.join(out, "results.json"), "w") as fh:
        json.dump({"cells": reports, "advantages": summary, "runs": rows}, fh, indent=1)
    if all(r["uncertain"] for r in rows):
        ratios = read_predictions(out, dict.fromkeys(r["cell"] for r in rows))
        write_verdicts(out, rows, adv, ratios, methods)
        plot_uncertain(out, rows, adv, ratios, methods)
    else:
        plot(out, rows, adv)
    print("\n".join(lines))


def plot(out, rows, adv):
    """Advantage over GRPO (paired, 95% interval) against Theorem 1's coverage p, measured
    per cell, at equal steps and at equal tokens, and the held-out curves of the sweep's cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    shown = [m for m in ("oracle", "srpo", "rrpo") if any(r["method"] == m for r in rows)]
    p_of = {r["cell"]: max(r["p_theorem"], 1e-4) for r in rows}
    for k, (ax, key) in enumerate(zip(axes[:2], ("steps", "tokens"))):
        for j, m in enumerate(shown):
            for (c, mm), a in adv.items():
                if mm == m and a[key][0] is not None:  # circles: common/early cells, squares: rare/late
                    # offset: bars apart
                    ax.errorbar(
                        [p_of[c] * 1.05 ** (j - 1)],
                        [a[key][0]],
                        yerr=[a[key][1] or 0],
                        capsize=3,
                        fmt="s" if "rare" in c else "o",
                        color=f"C{j}",
                        label=m.upper(),
                    )
        for cell, p in p_of.items():  # each cell named at the bottom, at its p
            ax.annotate(
                cell, (p, 0.02), xycoords=("data", "axes fraction"), rotation=90, fontsize=7, ha="center"
            )
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_xticks(
            sorted(set(p_of.values())), [f"{p:.3f}" for p in sorted(set(p_of.values()))], fontsize=7
        )
        ax.minorticks_off()
        ax.set_xlabel("coverage p (Theorem 1, log scale); circles: common/early, squares: rare/late")
        ax.set_ylabel("held-out pass rate minus GRPO's (same run key)")
        ax.set_title(["at equal training steps", "at equal generated tokens"][k])
        handles, labels = ax.get_legend_handles_labels()
        keep = dict(zip(labels, handles))
        ax.legend(keep.values(), keep.keys())
    for j, cell in enumerate(dict.fromkeys(r["cell"] for r in rows)):  # (c) GRPO and ORACLE curves per cell
        for m, style in (("grpo", "--"), ("oracle", "-")):
            rs = [r for r in rows if r["cell"] == cell and r["method"] == m]
            if rs:
                axes[2].plot(
                    rs[0]["curve"]["step"],
                    np.mean([r["curve"]["pass"] for r in rs], 0),
                    style,
                    color=f"C{j}",
                    label=f"{cell} {m.upper()}",
                )
    axes[2].set_xlabel("training step")
    axes[2].set_ylabel("held-out pass rate (greedy), mean over run keys")
    axes[2].legend(fontsize=7, ncol=2)
    fig.suptitle(
        "classroom world: where do resets pay? (Theorem 1: the oracle's edge grows as coverage p falls)"
    )
    fig.tight_layout()
    fig.savefig(os.path.join(out, "compare_resets.png"), dpi=120)
    plt.close(fig)


def outcome(mean_ci):
    """A measured advantage as a sign: ahead (its 95% interval above 0), behind, or tie."""
    mean, ci = mean_ci
    if mean is None or ci is None:
        return "-"
    return "ahead" if mean - ci > 0 else "behind" if mean + ci < 0 else "tie"


def verdict(ratio, margin=0.1):
    """A predicted ratio as a sign at equal tokens: ahead of GRPO, tied (within margin), behind."""
    return "ahead" if ratio > 1 + margin else "behind" if ratio < 1 - margin else "tie"


def read_predictions(out, cells):
    """{cell: {method: the regime map's cost ratio}} from each cell's prediction.json
    (written by --predict before any run); a cell without one is left out."""
    paths = {cell: os.path.join(out, cell, "prediction.json") for cell in cells}
    return {cell: json.load(open(path))["ratio"] for cell, path in paths.items() if os.path.exists(path)}


def write_verdicts(out, rows, adv, ratios, methods):
    """The uncertain sweep's prediction and outcome side by side (verdicts.md): per cell and
    method, the regime map's ratio and verdict (`ratios`, read_predictions) and the
    measured advantage over GRPO at equal tokens with its verdict, for each of `methods`
    but GRPO."""
    lines = [
        "| cell | p0 | method | predicted (tabular cost ratio) | measured, equal tokens | "
        "measured, equal steps | outcome | agree |",
        "|" + " --- |" * 8,
    ]
    for cell in dict.fromkeys(r["cell"] for r in rows):
        ratio = ratios.get(cell, {})
        p0 = next(r["p0"] for r in rows if r["cell"] == cell)
        for m in [m for m in methods if m != "grpo"]:
            if (cell, m) not in adv:
                continue
            said = f"{ratio[m]:.2f} ({verdict(ratio[m])})" if m in ratio else "-"
            got = outcome(adv[cell, m]["tokens"])
            agree = "-" if m not in ratio or got == "-" else "yes" if got == verdict(ratio[m]) else "no"
            lines.append(
                f"| {cell} | {p0:.3f} | {m.upper()} | {said} | {fmt(adv[cell, m]['tokens'], sign=True)} | "
                f"{fmt(adv[cell, m]['steps'], sign=True)} | {got} | {agree} |"
            )
    with open(os.path.join(out, "verdicts.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot_uncertain(out, rows, adv, ratios, methods):
    """The uncertain sweep in one figure: each method's advantage over GRPO at equal tokens
    (paired, 95% interval) against the cell's measured start pass rate p0, with the paper's
    per-rollout normaliser (a) and the constant one (b), and the regime map's prediction
    for the same cells (c: GRPO's cost over the method's, above 1 = ahead)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    # cells in order of falling start pass rate p0, evenly spaced (two cells may share a p0)
    order = sorted(
        dict.fromkeys(r["cell"] for r in rows), key=lambda c: -next(r["p0"] for r in rows if r["cell"] == c)
    )
    x = {c: i for i, c in enumerate(order)}
    panels = (("rrpo", "srpo", "noisy", "oracle", "grpo-g4"), ("grpo-const", "oracle-const", "oracle"))
    colors = {m: f"C{j}" for j, m in enumerate(methods)}
    for ax, shown in zip(axes[:2], panels):
        for j, m in enumerate(shown):
            for (c, mm), a in adv.items():
                if mm == m and a["tokens"][0] is not None:
                    ax.errorbar(
                        [x[c] + 0.08 * (j - len(shown) / 2)],  # offset: bars apart
                        [a["tokens"][0]],
                        yerr=[a["tokens"][1] or 0],
                        capsize=3,
                        fmt="s" if m.endswith("-const") else "o",
                        color=colors[m],
                        label=m.upper(),
                    )
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("cells, by start pass rate p0 at the sampling temperature (measured), falling")
        ax.set_ylabel("held-out pass rate minus GRPO's at equal tokens (same run key)")
        handles, labels = ax.get_legend_handles_labels()
        keep = dict(zip(labels, handles))
        ax.legend(keep.values(), keep.keys(), fontsize=8)
    axes[0].set_title("(a) the paper's loss: each rollout's tokens averaged")
    axes[1].set_title("(b) the normaliser control: a constant normaliser")
    for cell, ratio in ratios.items():  # (c) the prediction, where written
        for j, m in enumerate(ratio):  # in the order prediction.json lists them
            axes[2].plot(
                [x[cell] + 0.08 * (j - 2)],
                [ratio[m]],
                "s" if m.endswith("-const") else "o",
                color=colors[m],
                label=m.upper(),
            )
    axes[2].axhline(1, color="grey", lw=0.8)
    axes[2].set_yscale("log")
    axes[2].set_yticks([0.5, 0.7, 1, 1.5, 2, 3, 4], ["0.5", "0.7", "1", "1.5", "2", "3", "4"])
    axes[2].minorticks_off()
    labels = []
    for c in order:  # each cell's measured p0 and its m
        r = next(r for r in rows if r["cell"] == c)
        labels.append(
            f"p0 {r['p0']:.3g}\nm = {r['uncertain']}"
            if r["p0"] >= 1e-3
            else f"p0 < 0.001\nm = {r['uncertain']}"
        )
    for ax in axes:
        ax.set_xticks(range(len(order)), labels, fontsize=8)
        ax.set_xlim(-0.5, len(order) - 0.5)
    axes[2].set_xlabel("cells, by start pass rate p0 (measured), falling")
    axes[2].set_ylabel("GRPO's generated steps / the method's (tabular)")
    axes[2].set_title("(c) the regime map's prediction for the same cells")
    handles, labels = axes[2].get_legend_handles_labels()
    keep = dict(zip(labels, handles))
    axes[2].legend(keep.values(), keep.keys(), fontsize=8)
    fig.suptitle(
        "classroom world, m uncertain steps: where do resets pay, against what the regime map predicted?"
    )
    fig.tight_layout()
    fig.savefig(os.path.join(out, "compare_resets.png"), dpi=120)
    plt.close(fig)
