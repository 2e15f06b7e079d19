"""evaluate.py: the paper's benchmarks, temperature-0 evaluation, and its tables and figures.

Paper map
  Sec. 5, Table 3     ten benchmarks, 500 items each (seeded), temperature 0, the
                      Thought-MDP prompt; mean +- SD over seeds, best in bold,
                      the base model as a seed-invariant row          BENCHMARKS, evaluate(), table3()
  Sec. 5.3            LiveCodeBench v6 medium; each problem's tests split into a
                      training verifier and a held-out part           livecodebench_tests(), split_tests()
  Fig. 3 (left)       validation pass rate against training step       figure_validation()
  Fig. 4a             reset-index distribution, SRPO against RRPO      figure_reset_indices()
  Fig. 4b-d           self-localization against a second localizer:
                      deviation, correction rate, clean vs erroneous   figure_localization()
  Fig. 7              shared-prefix pass rate and App. G's signal ratio
                      over training                                    figure_signal()
  App. H, Tables 7-8  compute per method from the training metrics,
                      localization tokens included                     table_compute()

Every benchmark loads through `datasets.load_dataset`, from the Hub id of
REFERENCE-apis Part 2, or from local files in the same schema (`data_files`,
what the tests do with hand-written fixtures). Rows become problems in one
schema: {id, question, kind, answer | choices | tests}. A row without a field
we rely on raises an error that names the dataset and the field.

Choices, and why
  * numina-olympiads: the `olympiads` rows of AI-MO/NuminaMath-CoT with a
    \\boxed{} answer in the solution. The 400 training problems
    (`numina-olympiads-train`) and the evaluation items are drawn disjointly
    with the same seed.
  * SciKnowEval: per domain, the multiple-choice and true/false rows (other
    types have no automatic grader here).
  * LiveCodeBench: `release_v6` problems of medium difficulty; hidden tests
    are decoded (JSON, or base64 + zlib + pickle as the benchmark stores them:
    pickle runs code, so only decode the benchmark's own files); each problem's
    tests are split by a hash of the problem id, half for the training
    verifier (`train_tests`), half held out (`tests`, what evaluation grades).
  * Evaluation uses the training caps of the Thought MDP (App. C) at temperature 0.

Run it
  python evaluate.py --model smollm2-135m --benchmarks bundled --n 20
  python evaluate.py --model smollm2-135m --adapter runs/srpo-demo-smollm2-135m --benchmarks bundled
  python evaluate.py --model tiny-world --adapter runs/grpo-demo runs/srpo-demo --benchmarks tiny-world \
      --n 256 --max-thoughts 6 --max-thought-tokens 24 --max-response-tokens 96   # the classroom world
  python evaluate.py --report runs/grpo-demo runs/rrpo-demo runs/srpo-demo --out runs/report
  python evaluate.py --model allenai/OLMo-3-7B-Instruct --adapter runs/srpo-s0 runs/srpo-s42 --benchmarks all \
      --engine vllm --tp 2                                # GPUs: adapters hot-loaded into vLLM (gpus.py)
"""

import argparse
import base64
import hashlib
import json
import os
import pickle
import random
import zlib
from dataclasses import dataclass

import numpy as np

import gpus
import rewards
import thought_mdp as tm

# -----------------------------------------------------------------------------
# Benchmarks: where each lives and how a row becomes a problem


class SchemaError(ValueError):
    pass


def field(row, name, dataset):
    if name not in row or row[name] is None:
        raise SchemaError(f"{dataset}: expected field {name!r} in every row, found {sorted(row)}")
    return row[name]


@dataclass
class Benchmark:
    hub: dict  # load_dataset(**hub) arguments
    convert: object  # row -> problem dict, or None to skip the row


def numina(row):
    if field(row, "source", "AI-MO/NuminaMath-CoT") != "olympiads":
        return None
    answer = rewards.last_boxed(field(row, "solution", "AI-MO/NuminaMath-CoT"))
    if not answer:  # proofs and rows without a boxed answer cannot be graded
        return None
    return {"question": field(row, "problem", "AI-MO/NuminaMath-CoT"), "kind": "math", "answer": answer}


def hmmt(row):
    return {"question": field(row, "problem", "MathArena/hmmt_nov_2025"), "kind": "math",
            "answer": str(field(row, "answer", "MathArena/hmmt_nov_2025"))}


def math_level5(row):
    name = "DigitalLearningGmbH/MATH-lighteval"
    if field(row, "level", name) != "Level 5":
        return None
    answer = rewards.last_boxed(field(row, "solution", name))
    return {"question": field(row, "problem", name), "kind": "math", "answer": answer} if answer else None


def strategyqa(row):
    answer = field(row, "answer", "ChilleD/StrategyQA")
    if not isinstance(answer, bool):
        raise SchemaError(f"ChilleD/StrategyQA: expected a bool 'answer', got {answer!r}")
    return {"question": field(row, "question", "ChilleD/StrategyQA"), "kind": "yesno", "answer": answer}


def acereason(row):
    return {"question": field(row, "problem", "nvidia/AceReason-Math"), "kind": "math",
            "answer": str(field(row, "answer", "nvidia/AceReason-Math"))}


def sciknoweval(domain):
    def convert(row):
        name = "hicai-zju/SciKnowEval"
        if field(row, "domain", name) != domain:
            return None
        kind = field(row, "type", name)
        if kind.startswith("mcq"):
            choices = field(row, "choices", name)
            return {"question": field(row, "question", name), "kind": "choice",
                    "choices": list(choices["text"]), "answer": field(row, "answerKey", name)}
        if kind == "true_or_false":
            return {"question": field(row, "question", name), "kind": "yesno", "answer": field(row, "answer", name)}
        return None
    return convert


def commonsenseqa(row):
    name = "tau/commonsense_qa"
    choices = field(row, "choices", name)
    return {"question": field(row, "question", name), "kind": "choice", "choices": list(choices["text"]),
            "answer": field(row, "answerKey", name)}


def decode_tests(blob):
    """LiveCodeBench test cases: JSON, or base64 + zlib + pickle holding JSON."""
    try:
        return json.loads(blob)
    except (json.JSONDecodeError, TypeError):
        return json.loads(pickle.loads(zlib.decompress(base64.b64decode(blob))))


def livecodebench_tests(row):
    """Our test dicts for one LiveCodeBench row, public and hidden tests together."""
    name = "livecodebench/code_generation_lite"
    cases = decode_tests(field(row, "public_test_cases", name)) + decode_tests(field(row, "private_test_cases", name))
    fn_name = json.loads(row.get("metadata") or "{}").get("func_name")
    tests = []
    for case in cases:
        if case.get("testtype") == "functional":
            if not fn_name:
                raise SchemaError(f"{name}: functional test without metadata.func_name")
            args = [json.loads(line) for line in case["input"].split("\n") if line.strip()]
            tests.append({"type": "call", "fn_name": fn_name, "input": args, "output": json.loads(case["output"])})
        else:
            tests.append({"type": "stdin", "input": case["input"], "output": case["output"]})
    return tests


def split_tests(problem_id, tests):
    """Deterministic half/half split of a problem's tests (Sec. 5.3): (train, held_out)."""
    order = sorted(range(len(tests)), key=lambda i: hashlib.sha256(f"{problem_id}/{i}".encode()).hexdigest())
    cut = max(1, len(tests) // 2) if len(tests) > 1 else 0
    train = [tests[i] for i in sorted(order[:cut])]
    held = [tests[i] for i in sorted(order[cut:])]
    return train, held


def livecodebench(row):
    name = "livecodebench/code_generation_lite"
    if field(row, "difficulty", name) != "medium":
        return None
    pid = str(field(row, "question_id", name))
    train, held = split_tests(pid, livecodebench_tests(row))
    question = field(row, "question_content", name)
    if row.get("starter_code"):
        question += f"\n\nStart from this code:\n```python\n{row['starter_code']}\n```"
    return {"id": f"lcb-{pid}", "question": question, "kind": "code", "tests": held, "train_tests": train}


BENCHMARKS = {
    "numina-olympiads": Benchmark(dict(path="AI-MO/NuminaMath-CoT", split="train"), numina),
    "hmmt-nov-2025": Benchmark(dict(path="MathArena/hmmt_nov_2025", split="train"), hmmt),
    "math-level5": Benchmark(dict(path="DigitalLearningGmbH/MATH-lighteval", split="test"), math_level5),
    "strategyqa": Benchmark(dict(path="ChilleD/StrategyQA", split="test"), strategyqa),
    "acereason-math": Benchmark(dict(path="nvidia/AceReason-Math", split="train"), acereason),
    "sciknoweval-chemistry": Benchmark(dict(path="hicai-zju/SciKnowEval", split="test"), sciknoweval("Chemistry")),
    "sciknoweval-biology": Benchmark(dict(path="hicai-zju/SciKnowEval", split="test"), sciknoweval("Biology")),
    "commonsenseqa": Benchmark(dict(path="tau/commonsense_qa", split="validation"), commonsenseqa),
    "sciknoweval-materials": Benchmark(dict(path="hicai-zju/SciKnowEval", split="test"), sciknoweval("Material")),
    "sciknoweval-physics": Benchmark(dict(path="hicai-zju/SciKnowEval", split="test"), sciknoweval("Physics")),
    "livecodebench": Benchmark(dict(path="livecodebench/code_generation_lite", split="test", revision="refs/pr/6"),
                               livecodebench),
}
TABLE3 = ["numina-olympiads", "hmmt-nov-2025", "math-level5", "strategyqa", "acereason-math", "sciknoweval-chemistry",
          "sciknoweval-biology", "commonsenseqa", "sciknoweval-materials", "sciknoweval-physics"]
SHORT = dict(zip(TABLE3, ["oly", "hmmt", "lvl5", "stra", "ace", "chem", "bio", "csqa", "mat", "phys"]))


def load_rows(name, data_files=None):
    """Rows of a benchmark from the Hub, or from local files in the same schema."""
    import datasets

    if data_files:
        return datasets.load_dataset("json", data_files=data_files, split="train")
    try:
        return datasets.load_dataset(**BENCHMARKS[name].hub)
    except Exception as e:  # offline, renamed, gated: say which dataset
        raise RuntimeError(f"could not load benchmark {name!r} from {BENCHMARKS[name].hub}: {e}") from e


def load_benchmark(name, n=500, seed=0, data_files=None, train_problems=400):
    """Problems of benchmark `name` in one schema, n of them drawn with a fixed seed
    (all when there are fewer). `numina-olympiads-train` gives the 400 training problems."""
    if name == "bundled":
        problems = tm.load_problems()
        return problems if len(problems) <= n else random.Random(seed).sample(problems, n)
    if name in ("tiny-world", "tiny-world-train"):  # the classroom world: held-out / training problems
        import tiny_world
        return tiny_world.problems("train" if name.endswith("-train") else "test", n, seed)
    base = name.removesuffix("-train")
    if base not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: bundled, tiny-world, {', '.join(BENCHMARKS)}, "
                         "numina-olympiads-train, tiny-world-train")
    problems = []
    for i, row in enumerate(load_rows(base, data_files)):
        p = BENCHMARKS[base].convert(dict(row))
        if p is not None:
            p.setdefault("id", f"{base}-{i}")
            problems.append(p)
    rng = random.Random(seed)
    order = rng.sample(range(len(problems)), len(problems))
    if base == "numina-olympiads":  # training and evaluation items are disjoint
        train, rest = order[:train_problems], order[train_problems:]
        order = train if name.endswith("-train") else rest
    return [problems[i] for i in order[:n]]


# -----------------------------------------------------------------------------
# Temperature-0 evaluation with resumable per-item results


def evaluate(engine, problems, out_path, cfg=None, batch=16, desc="eval"):
    """Grade each problem once at temperature 0; results are appended to
    `out_path` (JSONL) item by item, and items already there are skipped."""
    from tqdm import tqdm

    cfg = cfg or tm.ThoughtConfig(temperature=0.0)
    done = {}
    if os.path.exists(out_path):
        for line in open(out_path):
            try:
                rec = json.loads(line)
                done[rec["id"]] = rec
            except json.JSONDecodeError:  # a line cut by a crash: that item runs again
                continue
    todo = [p for p in problems if p["id"] not in done]
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    with open(out_path, "a") as fh, tqdm(total=len(problems), initial=len(problems) - len(todo), desc=desc) as bar:
        for k in range(0, len(todo), batch):
            chunk = todo[k:k + batch]
            states = [tm.initial_state(engine.tokenizer, p, cfg) for p in chunk]
            for p, r in zip(chunk, tm.sample_rollouts(engine, states, 1, cfg, seed=0)):
                rec = {"id": p["id"], "reward": r.reward, "answer": r.answer, "finish_reason": r.finish_reason,
                       "n_thoughts": len(r.thought_ids), "n_tokens": len(r.response_ids)}
                done[p["id"]] = rec
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
            bar.update(len(chunk))
    return float(np.mean([done[p["id"]]["reward"] for p in problems])) if problems else float("nan")


def validate(engine, problems, run_dir, step, cfg):
    """The training loop's hook (grpo.py --eval-every): pass rate on validation
    problems at temperature 0, appended to RUN_DIR/eval.jsonl."""
    import dataclasses

    import grpo
    tcfg = dataclasses.replace(grpo.thought_config(cfg), temperature=0.0, top_p=1.0)  # the run's caps, greedy
    states = [tm.initial_state(engine.tokenizer, p, tcfg) for p in problems]
    rollouts = tm.sample_rollouts(engine, states, 1, tcfg, seed=0)
    rate = float(np.mean([r.reward for r in rollouts]))
    with open(os.path.join(run_dir, "eval.jsonl"), "a") as fh:
        fh.write(json.dumps({"step": step, "pass_rate": rate, "n": len(problems)}) + "\n")
    return rate


# -----------------------------------------------------------------------------
# Tables


def fmt_mean_sd(values, scale=100.0):
    values = [v * scale for v in values]
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}"


def table3(results, base=None, benchmarks=None):
    """Table 3 as (markdown, csv): rows are methods, columns benchmarks, cells
    mean ± SD over seeds in percent, the best mean per column in bold; `base`
    ({bench: rate}) is the seed-invariant base-model row. results = {method: [{bench: rate}, ...]}."""
    benchmarks = benchmarks or sorted({b for runs in results.values() for run in runs for b in run})
    means = {m: {b: np.mean([run[b] for run in runs if b in run]) for b in benchmarks} for m, runs in results.items()}
    best = {b: max(means[m][b] for m in results) for b in benchmarks}
    head = ["Method"] + [SHORT.get(b, b) for b in benchmarks]
    md = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    csv = [",".join(head)]
    if base:
        md.append("| Base† | " + " | ".join(f"{100 * base[b]:.1f}" for b in benchmarks) + " |")
        csv.append("Base," + ",".join(f"{100 * base[b]:.1f}" for b in benchmarks))
    for m, runs in results.items():
        cells = []
        for b in benchmarks:
            cell = fmt_mean_sd([run[b] for run in runs if b in run])
            cells.append(f"**{cell}**" if np.isclose(means[m][b], best[b]) else cell)
        md.append(f"| {m.upper()} | " + " | ".join(cells) + " |")
        csv.append(f"{m.upper()}," + ",".join(c.strip("*").replace(" ± ", "+-") for c in cells))
    if base:
        md.append("\n† the base model is seed-invariant (one evaluation, no SD).")
    return "\n".join(md), "\n".join(csv)


def read_run(run_dir):
    with open(os.path.join(run_dir, "config.json")) as fh:
        config = json.load(fh)
    metrics = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    evals = []
    if os.path.exists(os.path.join(run_dir, "eval.jsonl")):
        evals = [json.loads(line) for line in open(os.path.join(run_dir, "eval.jsonl"))]
    return config, metrics, evals


def table_compute(run_dirs):
    """App. H, Tables 7 and 8 from the training metrics, as (markdown, csv)."""
    rows = {}
    for run in run_dirs:
        config, metrics, _ = read_run(run)
        row = rows.setdefault(config["method"], {"train_h": [], "gen_h": [], "loc_h": [], "tokens": [], "loc_tokens": [],
                                                  "resp": [], "tok_s": []})
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
    md = ["Table 7: compute per method (means over runs)", "", "| " + " | ".join(head7) + " |", "|" + " --- |" * len(head7)]
    csv = [",".join(head7)]
    for m, r in mean.items():
        cells = [f"{r['train_h']:.4f}", f"{r['gen_h']:.4f}", f"{r['loc_h']:.4f}", f"{r['tokens']:.0f}",
                 f"{r['loc_tokens']:.0f}", f"{r['resp']:.1f}", f"{r['tok_s']:.1f}"]
        md.append(f"| {m.upper()} | " + " | ".join(cells) + " |")
        csv.append(f"{m.upper()}," + ",".join(cells))
    if "grpo" in mean:
        g = mean["grpo"]
        head8 = ["Method", "train", "gen", "tokens", "tokens + localization", "resp_mu"]
        md += ["", "Table 8: normalised to GRPO", "", "| " + " | ".join(head8) + " |", "|" + " --- |" * len(head8)]
        for m, r in mean.items():
            cells = [r["train_h"] / g["train_h"], r["gen_h"] / g["gen_h"], r["tokens"] / g["tokens"],
                     (r["tokens"] + r["loc_tokens"]) / g["tokens"], r["resp"] / g["resp"]]
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
        config, metrics, _ = read_run(run)
        rel = [h / n for m in metrics for h, n in zip(m.get("reset/indices", []), m.get("reset/seed_lengths", []))]
        if rel:
            ax.hist(rel, bins=np.linspace(0, 1, 11), alpha=0.5, density=True, label=f"{config['method'].upper()} ({len(rel)} resets)")
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
        config, metrics, _ = read_run(run)
        if config["method"] == "grpo":
            continue
        steps = [m["step"] for m in metrics]
        ratio = [m.get("signal/ratio", float("nan")) for m in metrics]
        left.plot(steps, ratio, "o-", label=config["method"].upper())
        right.plot(steps, [m.get("reset/suffix_pass_rate", float("nan")) for m in metrics], "o-",
                   label=config["method"].upper())
    left.axhline(1.0, color="gray", ls=":")
    left.set_title("per-token signal ratio g_SP / g_base")
    right.set_title("shared-prefix pass rate")
    for ax in (left, right):
        ax.set_xlabel("training step")
        ax.legend()
    _save(fig, path)


def figure_validation(run_dirs, path):
    """Fig. 3 (left): validation pass rate against training step, mean ± SE over seeds per method."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    curves = {}
    for run in run_dirs:
        config, _, evals = read_run(run)
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
        for m in read_run(run)[1]:
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
    axes[2].bar(["clean (h* <= ref)", "erroneous"], [clean.mean() if len(clean) else 0, wrong.mean() if len(wrong) else 0])
    axes[2].set_title("(d) clean vs erroneous prefixes")
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
    return written


# -----------------------------------------------------------------------------


def load_run(base_model, run):
    """The policy a training run ended with: its LoRA adapter on the base model, or,
    for a full fine-tune (--full-finetune, the tiny world), its trained weights
    loaded into a copy of the base model."""
    import copy

    import torch

    adapter = os.path.join(run, "checkpoint", "adapter")
    if os.path.exists(adapter):
        from peft import PeftModel
        return PeftModel.from_pretrained(base_model, adapter).eval()
    weights = os.path.join(run, "checkpoint", "trainable.pt")
    if not os.path.exists(weights):
        raise FileNotFoundError(f"{run} holds no checkpoint/adapter nor checkpoint/trainable.pt: not a finished training run")
    policy = copy.deepcopy(base_model)
    missing, unexpected = policy.load_state_dict(torch.load(weights), strict=False)
    if unexpected:
        raise ValueError(f"{run} was trained on another model: unknown weights {unexpected[:3]}")
    return policy.eval()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Evaluate models and adapters; write the paper's tables and figures.")
    parser.add_argument("--model", default="smollm2-135m", help="base model: bundled name, Hub id or local folder")
    parser.add_argument("--adapter", nargs="*", default=[], help="training run folders to evaluate (LoRA adapter or fully fine-tuned weights)")
    parser.add_argument("--benchmarks", default="bundled", help="all, or a comma-separated list (bundled, " + ", ".join(BENCHMARKS) + ")")
    parser.add_argument("--n", type=int, default=500, help="items per benchmark (seeded sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/eval", help="output folder")
    parser.add_argument("--report", nargs="*", default=None, help="run folders for Tables 7-8 and the figures (no evaluation needed)")
    parser.add_argument("--max-thoughts", type=int, default=20)
    parser.add_argument("--max-thought-tokens", type=int, default=256)
    parser.add_argument("--max-response-tokens", type=int, default=4096)
    parser.add_argument("--engine", choices=gpus.ENGINES, default="auto", help="auto: vllm when it imports and a GPU is present")
    parser.add_argument("--tp", type=int, default=1, help="vLLM tensor parallel size (GPUs)")
    parser.add_argument("--max-lora-rank", type=int, default=64, help="the adapters' LoRA rank (vLLM)")
    args = parser.parse_args(argv)
    if args.report is not None:  # tables 7-8 and figures from training run folders only
        written = report(args.report, args.out)
        print("wrote " + ", ".join(os.path.join(args.out, w) for w in written))
        return written
    names = TABLE3 if args.benchmarks == "all" else args.benchmarks.split(",")
    cfg = tm.ThoughtConfig(max_thoughts=args.max_thoughts, max_thought_tokens=args.max_thought_tokens,
                           max_response_tokens=args.max_response_tokens, temperature=0.0)
    benchmarks = {name: load_benchmark(name, args.n, args.seed) for name in names}
    for name, problems in benchmarks.items():
        print(f"{name}: {len(problems)} items")
    engine_kind, why = gpus.choose_engine(args.engine)
    print(why)
    if engine_kind == "vllm":  # base weights in vLLM; each run's adapter is hot-loaded
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        engine = gpus.VLLMEngine(args.model, tokenizer, tp=args.tp, lora_rank=args.max_lora_rank, seed=args.seed,
                                 gpu_memory_utilization=0.9, max_model_len=cfg.max_prompt_tokens + cfg.max_response_tokens + 64)
    else:
        base_model, tokenizer = tm.load_model(args.model)
        engine = tm.HFEngine(base_model, tokenizer)
    base = {name: evaluate(engine, problems, os.path.join(args.out, "base", f"{name}.jsonl"), cfg, desc=f"base {name}")
            for name, problems in benchmarks.items()}
    runs = {}  # method -> [{benchmark: pass rate} per run folder (seed)]
    for k, run in enumerate(args.adapter):
        with open(os.path.join(run, "config.json")) as fh:
            method = json.load(fh)["method"]
        if engine_kind == "vllm":
            engine.load_adapter(os.path.join(run, "checkpoint", "adapter"), k)  # a new name and id per run
        else:
            policy = load_run(base_model, run)
            engine = tm.HFEngine(policy, tokenizer)
        label = os.path.basename(os.path.normpath(run))
        runs.setdefault(method, []).append({
            name: evaluate(engine, problems, os.path.join(args.out, label, f"{name}.jsonl"), cfg, desc=f"{label} {name}")
            for name, problems in benchmarks.items()})
        if engine_kind == "hf" and hasattr(policy, "unload"):
            base_model = policy.unload()  # the next adapter starts from the bare base model
    md, _ = table3(runs, base, names) if runs else table3({"base": [base]}, None, names)
    print("\n" + md)
    with open(os.path.join(args.out, "pass_rates.json"), "w") as fh:
        json.dump({"base": base, "runs": runs}, fh, indent=2)
    if runs:
        written = report(args.adapter, args.out, runs, base)
        print("wrote " + ", ".join(os.path.join(args.out, w) for w in written))
    return base, runs


if __name__ == "__main__":
    main()
