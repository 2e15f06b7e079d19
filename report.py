"""report.py: the paper's tables and figures from run folders and evaluation results (Sec. 5, App. E-H).

evaluate.py scores a model and its trained runs on the benchmarks; this file
turns what it and the training runs wrote into the paper's Table 3, Tables
7-8 and Figures 3, 4 and 7, one function each, written into an output folder.
It reads run folders (config.json, metrics.jsonl, eval.jsonl) and needs no
model.

Paper map
  Sec. 5, Table 3     mean +- SD over run keys in percent, best mean in bold,
                      the base model as a key-invariant row              table3()
  App. H, Tables 7-8  compute per method from the training metrics,
                      localization tokens included                       table_compute()
  Fig. 3 (left)       validation pass rate against training step         figure_validation()
  Fig. 4a             reset-index distribution, SRPO against RRPO        figure_reset_indices()
  Fig. 4b-d           self-localization against a second localizer:
                      deviation, correction rate, clean vs erroneous     figure_localization()
  Fig. 7              shared-prefix pass rate and App. G's signal ratio
                      over training                                      figure_signal()
  (ours)              one reset drawn as a tree from resets.jsonl        figure_reset_tree()

Symbols
  results     -> {method: [{benchmark: pass rate} per run folder]}, pass rates in [0, 1]
  run folder  -> what grpo.py writes: config.json, metrics.jsonl, eval.jsonl, checkpoint/

Choices
  * A figure whose data no run recorded (Fig. 4b-d needs --reference-localizer)
    is not written, rather than drawn empty.
  * matplotlib is imported only when a figure is drawn, with the Agg backend.

Run it
  python evaluate.py --report runs/grpo-demo runs/rrpo-demo runs/srpo-demo --out runs/report
"""

import json
import os

import numpy as np

import benchmarks
import runs

# -----------------------------------------------------------------------------
# Tables


def fmt_mean_sd(values, scale=100.0):
    values = [v * scale for v in values]
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}"


def table3(results, base=None, columns=None):
    """Table 3 as (markdown, csv): rows are methods, columns benchmarks, cells
    mean ± SD over run keys in percent, the best mean per column in bold; `base`
    ({bench: rate}) is the key-invariant base-model row. results = {method: [{bench: rate}, ...]}."""
    columns = columns or sorted({b for per_seed in results.values() for run in per_seed for b in run})
    means = {
        m: {b: np.mean([run[b] for run in per_seed if b in run]) for b in columns}
        for m, per_seed in results.items()
    }
    best = {b: max(means[m][b] for m in results) for b in columns}
    head = ["Method"] + [benchmarks.SHORT.get(b, b) for b in columns]
    md = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    csv = [",".join(head)]
    if base:
        md.append("| Base† | " + " | ".join(f"{100 * base[b]:.1f}" for b in columns) + " |")
        csv.append("Base," + ",".join(f"{100 * base[b]:.1f}" for b in columns))
    for m, per_seed in results.items():
        cells = []
        for b in columns:
            cell = fmt_mean_sd([run[b] for run in per_seed if b in run])
            cells.append(f"**{cell}**" if np.isclose(means[m][b], best[b]) else cell)
        md.append(f"| {m.upper()} | " + " | ".join(cells) + " |")
        csv.append(f"{m.upper()}," + ",".join(c.strip("*").replace(" ± ", "+-") for c in cells))
    if base:
        md.append("\n† the base model is key-invariant (one evaluation, no SD).")
    return "\n".join(md), "\n".join(csv)


def table_compute(run_dirs):
    """App. H, Tables 7 and 8 from the training metrics, as (markdown, csv)."""
    rows = {}
    for run in run_dirs:
        config, metrics, _ = runs.read_run(run)
        row = rows.setdefault(
            config["method"],
            {
                "train_h": [],
                "gen_h": [],
                "loc_h": [],
                "tokens": [],
                "loc_tokens": [],
                "resp": [],
                "tok_s": [],
            },
        )
        gen_tokens = sum(m["tokens/base"] + m["tokens/suffix"] for m in metrics)
        gen_s = sum(m["time/gen_s"] for m in metrics)
        rollouts = sum(m.get("rollouts/generated", 0) for m in metrics)
        row["train_h"].append(sum(m["time/step_s"] for m in metrics) / 3600)
        row["gen_h"].append(gen_s / 3600)
        row["loc_h"].append(sum(m["time/localize_s"] for m in metrics) / 3600)
        row["tokens"].append(gen_tokens)
        row["loc_tokens"].append(sum(m["tokens/localize"] for m in metrics))
        row["resp"].append(gen_tokens / rollouts if rollouts else float("nan"))
        row["tok_s"].append(gen_tokens / gen_s if gen_s else float("nan"))
    mean = {m: {k: float(np.mean(v)) for k, v in r.items()} for m, r in rows.items()}
    head7 = ["Method", "train_h", "gen_h", "loc_h", "tokens", "loc tokens", "resp_mu", "gen tok/s"]
    md = [
        "Table 7: compute per method (means over runs)",
        "",
        "| " + " | ".join(head7) + " |",
        "|" + " --- |" * len(head7),
    ]
    csv = [",".join(head7)]
    for m, r in mean.items():
        cells = [
            f"{r['train_h']:.4f}",
            f"{r['gen_h']:.4f}",
            f"{r['loc_h']:.4f}",
            f"{r['tokens']:.0f}",
            f"{r['loc_tokens']:.0f}",
            f"{r['resp']:.1f}",
            f"{r['tok_s']:.1f}",
        ]
        md.append(f"| {m.upper()} | " + " | ".join(cells) + " |")
        csv.append(f"{m.upper()}," + ",".join(cells))
    if "grpo" in mean:
        g = mean["grpo"]
        head8 = ["Method", "train", "gen", "tokens", "tokens + localization", "resp_mu"]
        md += [
            "",
            "Table 8: normalised to GRPO",
            "",
            "| " + " | ".join(head8) + " |",
            "|" + " --- |" * len(head8),
        ]
        for m, r in mean.items():
            cells = [
                r["train_h"] / g["train_h"],
                r["gen_h"] / g["gen_h"],
                r["tokens"] / g["tokens"],
                (r["tokens"] + r["loc_tokens"]) / g["tokens"],
                r["resp"] / g["resp"],
            ]
            md.append(f"| {m.upper()} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    return "\n".join(md), "\n".join(csv)


# -----------------------------------------------------------------------------
# Figures, one function each, written into the output folder


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _plt().close(fig)


def figure_reset_indices(run_dirs, path):
    """Fig. 4a: where resets land, relative to the seed's length, SRPO against RRPO."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for run in run_dirs:
        config, metrics, _ = runs.read_run(run)
        rel = [
            h / n
            for m in metrics
            for h, n in zip(m.get("reset/indices", []), m.get("reset/seed_lengths", []))
        ]
        if rel:
            ax.hist(
                rel,
                bins=np.linspace(0, 1, 11),
                alpha=0.5,
                density=True,
                label=f"{config['method'].upper()} ({len(rel)} resets)",
            )
    ax.set_xlabel("reset index h* / seed length H_s")
    ax.set_ylabel("density")
    ax.set_title("Fig. 4a: reset-index distribution")
    ax.legend()
    _save(fig, path)


def figure_signal(run_dirs, path):
    """Fig. 7: the shared-prefix pass rate and App. G's signal ratio over training."""
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    for run in run_dirs:
        config, metrics, _ = runs.read_run(run)
        if config["method"] == "grpo":
            continue
        steps = [m["step"] for m in metrics]
        ratio = [m.get("signal/ratio", float("nan")) for m in metrics]
        left.plot(steps, ratio, "o-", label=config["method"].upper())
        right.plot(
            steps,
            [m.get("reset/suffix_pass_rate", float("nan")) for m in metrics],
            "o-",
            label=config["method"].upper(),
        )
    left.axhline(1.0, color="gray", ls=":")
    left.set_title("per-token signal ratio g_SP / g_base")
    right.set_title("shared-prefix pass rate")
    for ax in (left, right):
        ax.set_xlabel("training step")
        ax.legend()
    _save(fig, path)


def figure_validation(run_dirs, path):
    """Fig. 3 (left): validation pass rate against training step, mean ± SE over run keys per method."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    curves = {}
    for run in run_dirs:
        config, _, evals = runs.read_run(run)
        for e in evals:
            curves.setdefault(config["method"], {}).setdefault(e["step"], []).append(e["pass_rate"])
    for method, by_step in curves.items():
        steps = sorted(by_step)
        mean = np.array([np.mean(by_step[s]) for s in steps])
        se = np.array([np.std(by_step[s]) / np.sqrt(len(by_step[s])) for s in steps])
        ax.plot(steps, mean, "o-", label=method.upper())
        ax.fill_between(steps, mean - se, mean + se, alpha=0.2)
    ax.set_xlabel("training step")
    ax.set_ylabel("validation pass rate")
    ax.set_title("Fig. 3: validation pass rate")
    if curves:
        ax.legend()
    _save(fig, path)


def figure_localization(run_dirs, path):
    """Fig. 4b-d, for runs whose seeds were also localized by a second model
    (records with `h_ref`): deviation of self-localization from it, the correction
    rate by deviation, and clean (h* <= h_ref) against erroneous prefixes.
    Returns False when no run has such records."""
    records = []
    for run in run_dirs:
        for m in runs.read_run(run)[1]:
            records += [r for r in m.get("reset/records", []) if r.get("h_ref") is not None]
    if not records:
        return False
    plt = _plt()
    dev = np.array([r["h"] - r["h_ref"] for r in records])
    solved = np.array([r["suffix_pass"] for r in records])  # fraction of suffixes correct
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    axes[0].hist(dev, bins=np.arange(dev.min() - 0.5, dev.max() + 1.5), color="tab:purple")
    axes[0].set_title("(b) self - reference step")
    values = sorted(set(dev.tolist()))
    axes[1].bar(values, [solved[dev == v].mean() for v in values], color="tab:green")
    axes[1].set_title("(c) correction rate by deviation")
    clean, wrong = solved[dev <= 0], solved[dev > 0]
    axes[2].bar(
        ["clean (h* <= ref)", "erroneous"],
        [clean.mean() if len(clean) else 0, wrong.mean() if len(wrong) else 0],
    )
    axes[2].set_title("(d) clean vs erroneous prefixes")
    _save(fig, path)
    return True


def read_resets(run_dir):
    """A run's reset records (resets.jsonl, rrpo.reset_records); [] when it wrote none."""
    path = os.path.join(run_dir, "resets.jsonl")
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []


def pick_tree(records):
    """The first reset whose suffixes disagree (some right, some wrong): the kind that
    carries signal; else the first reset; None when there are none."""
    mixed = [r for r in records if len({s["reward"] for s in r["suffixes"]}) > 1]
    return (mixed or records or [None])[0]


def figure_reset_tree(run_dirs, path):
    """One reset drawn as a tree: the seed's thoughts along the bottom row (the shared
    prefix before h* grey, the discarded rest red), and each suffix as a branch from
    x* = the prefix, ending in its reward (green: right, red: wrong). Returns False when
    no run wrote reset records."""
    record = pick_tree([r for run in run_dirs for r in read_resets(run)])
    if record is None:
        return False
    plt = _plt()
    h, n = record["h"], record["H_s"]
    width = max([n] + [h - 1 + len(s["thoughts"]) for s in record["suffixes"]])
    fig, ax = plt.subplots(figsize=(min(12, 2 + 0.8 * width), 1.2 + 0.5 * len(record["suffixes"])))
    for k in range(1, n + 1):  # the seed
        ax.plot(k, 0, "o", color="0.55" if k < h else "tab:red", ms=9)
    ax.plot(range(1, n + 1), [0] * n, "-", color="0.7", zorder=0)
    ax.text(n + 0.4, 0, "seed: wrong", va="center", color="tab:red")
    for i, s in enumerate(record["suffixes"], 1):  # the branches from x*
        xs = [h - 1] + list(range(h, h + len(s["thoughts"])))
        ax.plot(xs, [0] + [i] * (len(xs) - 1), "-", color="tab:blue", alpha=0.6)
        ax.plot(xs[1:], [i] * (len(xs) - 1), "o", color="tab:blue", ms=6)
        right = s["reward"] >= 1
        ax.text(
            xs[-1] + 0.4,
            i,
            "right" if right else "wrong",
            va="center",
            color="tab:green" if right else "tab:red",
        )
    ax.axvline(h - 0.5, color="0.3", ls=":", lw=1)
    how = f", read as {record['path']}" if record.get("path") else ""
    ax.set_title(
        f"A reset at h* = {h} of H_s = {n}{how}: problem {record['problem']} (step {record['step']})"
    )
    ax.set_xlabel("thought")
    ax.set_yticks([])
    ax.set_xlim(0, width + 2)
    _save(fig, path)
    return True


def report(run_dirs, out, results=None, base=None):
    """Everything from run folders: Table 3 (when evaluation results are given),
    Tables 7-8 and the figures, into `out`."""
    os.makedirs(out, exist_ok=True)
    written = []
    if results:
        md, csv = table3(results, base)
        for ext, text in (("md", md), ("csv", csv)):
            with open(os.path.join(out, f"table3.{ext}"), "w") as fh:
                fh.write(text + "\n")
        written += ["table3.md", "table3.csv"]
    md, csv = table_compute(run_dirs)
    for ext, text in (("md", md), ("csv", csv)):
        with open(os.path.join(out, f"table_compute.{ext}"), "w") as fh:
            fh.write(text + "\n")
    written += ["table_compute.md", "table_compute.csv"]
    figure_reset_indices(run_dirs, os.path.join(out, "fig4a_reset_indices.png"))
    figure_signal(run_dirs, os.path.join(out, "fig7_signal.png"))
    figure_validation(run_dirs, os.path.join(out, "fig3_validation.png"))
    written += ["fig4a_reset_indices.png", "fig7_signal.png", "fig3_validation.png"]
    if figure_localization(run_dirs, os.path.join(out, "fig4bcd_localization.png")):
        written.append("fig4bcd_localization.png")
    if figure_reset_tree(run_dirs, os.path.join(out, "reset_tree.png")):
        written.append("reset_tree.png")
    return written
