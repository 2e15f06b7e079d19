"""thought_ics.py: Thought-ICS, inference-time self-correction from SRPO's own
three moves (localize, reset, resample), with no training.

The companion work of the paper (Iterative Correction Sampling of Thoughts,
Thought-ICS) answers one thought at a time, and when
an answer is judged wrong it asks the model for the first erroneous thought,
backtracks to the last correct one and resamples the rest, a few times over.
It reports a 20-40% self-correction lift when an oracle says which answers are
wrong. Here the loop reuses thought_mdp.py (sampling, reset states) and
localize.py (the localizer) unchanged, and is measured against two baselines
that spend the same number of model calls: resampling from scratch, and
resetting at a uniformly random thought (RRPO's reset, at inference time).

Paper map
  Sec. 4.1           thought-structured answers, reset states x* = (x_0, y_{1:h-1})   thought_mdp.reset_state
  Sec. 4.2, App. D   the localizer: first erroneous thought h*                       localize.localize
  Thought-ICS        verify -> localize -> backtrack -> resample, K rounds            correct()
  (ours)             the autonomous verifier's prompt, in our words   localize.VERIFY_PROMPT, parse_verdict()

Symbols
  K            -> rounds (Thought-ICS rounds after the first attempt)
  budget       -> model calls each strategy may spend after the first attempt:
                  K x (calls of one Thought-ICS round); one call = one batched
                  request for one problem (verify, localize or resample)
  h*           -> the reset index; thoughts 1..h*-1 are kept

Choices, and why
  * verify = "oracle": the benchmark's grader says whether the answer is wrong
    (costs no model call). verify = "self": the model answers localize.VERIFY_PROMPT with
    \\boxed{yes} or \\boxed{no}; an answer that cannot be parsed counts as "not
    judged wrong", so the loop never changes an answer without a verdict, and
    the parse-failure rate is reported.
  * Equal model calls: with the oracle a Thought-ICS round is 2 calls (localize,
    resample) and a baseline round 1 (resample), so baselines get 2K rounds; in
    self mode 3 against 2 (verify first in both). Tokens are counted too, and
    `--match rounds` gives every strategy K rounds instead (equal resamples).
  * Every strategy starts from the same first attempt (same sample), so lifts
    differ only by what happens after it. Sampling is at the Thought MDP's
    temperature 0.7 (resampling the same prefix greedily would repeat itself);
    the localizer and verifier decode greedily.
  * An answer with no thought to blame (EOS at once) is resampled from scratch.
  * Where the first error is known (the classroom world), every localization
    of a truly wrong answer is scored against it, and each resample is filed as
    from a clean prefix (h* <= true first error) or an erroneous one.

Run it
  python thought_ics.py --model tiny-world --benchmarks tiny-world --n 256 --verify oracle --rounds 3
  python thought_ics.py --model tiny-world --benchmarks tiny-world --n 256 --verify self --rounds 3
  # the bundled model, with the oracle judge; then on vLLM (a GPU, or vLLM's CPU build)
  python thought_ics.py --model smollm2-135m --benchmarks bundled --verify oracle --rounds 2
  python thought_ics.py --model smollm2-135m --benchmarks bundled --engine vllm
"""

import argparse
import dataclasses
import json
import os
import random

import numpy as np

import benchmarks
import engines
import gpus
import localize
import thought_mdp as tm
import tiny_world

STRATEGIES = ["localize", "random", "restart"]  # Thought-ICS, random reset, from scratch


def call_costs(verify):
    """Model calls of one round: (Thought-ICS, baseline)."""
    return (3, 2) if verify == "self" else (2, 1)


def correct(engine, problems, strategy, verify, rounds, cfg, key=0, first=None, truth=None, match="calls"):
    """Run one strategy on every problem; returns one record per problem.
    `first`: the shared first attempts (sampled here when None). `truth(problem,
    thought_texts)`: the true first error, where known (the classroom world).
    match="calls": every strategy may spend what K Thought-ICS rounds cost;
    match="rounds": every strategy gets K rounds (K resamples)."""
    rng = random.Random(key)
    ics_cost, base_cost = call_costs(verify)
    cost = ics_cost if strategy == "localize" else base_cost
    budget = rounds * (ics_cost if match == "calls" else cost)
    if first is None:
        first = tm.sample_rollouts(
            engine, [tm.initial_state(engine.tokenizer, p, cfg) for p in problems], 1, cfg, key
        )
    records = [
        {
            "id": p["id"],
            "first": r.reward,
            "final": r.reward,
            "final_text": r.text,
            "calls": 0,
            "tokens": 0,
            "rounds": 0,
            "verdicts": [],
            "judged": [],
            "resets": [],
        }
        for p, r in zip(problems, first)
    ]
    current = list(first)
    # a verification or localization request's cap; the localizer as this loop was measured with
    caps = localize.LocalizeConfig.for_caps(cfg, **localize.BEFORE_RELEASE)
    live = list(range(len(problems)))
    for k in range(budget // cost):
        # 1. verify: the oracle's grade, or the model's own verdict
        if verify == "self":
            params = engines.SamplingSettings(0.0, 1.0, 32, (), 1, key)
            answers = engine.generate(
                [
                    localize.verification_prompt(engine.tokenizer, current[i], caps.max_prompt_tokens)
                    for i in live
                ],
                params,
            )
            for i, [a] in zip(live, answers):
                records[i]["calls"] += 1
                records[i]["tokens"] += len(a.token_ids)
                records[i]["verdicts"].append(localize.parse_verdict(a.text))
                records[i]["judged"].append(current[i].reward)  # what the verdict should have said
            live = [i for i in live if records[i]["verdicts"][-1] is False]
        else:
            live = [i for i in live if current[i].reward < 1]
        if not live:
            break
        # 2. choose the reset index h*: localized, uniform, or none (from scratch)
        blamed = [i for i in live if current[i].thought_ids and strategy != "restart"]
        h = {i: None for i in live}
        if strategy == "localize" and blamed:
            found = localize.localize(
                engine, [current[i] for i in blamed], caps, engines.derive_key(key, k, 0)
            )
            for i, loc in zip(blamed, found):
                h[i] = loc.index
                records[i]["tokens"] += loc.n_tokens
        elif strategy == "random":
            h.update({i: rng.randint(1, len(current[i].thought_ids)) for i in blamed})
        if strategy == "localize":
            for i in live:
                records[i]["calls"] += 1  # the localization call (spent even when nothing could be blamed)
        # 3. backtrack and resample the rest
        states = [
            tm.reset_state(current[i], h[i]) if h[i] else tm.initial_state(engine.tokenizer, problems[i], cfg)
            for i in live
        ]
        resampled = tm.sample_rollouts(engine, states, 1, cfg, key=engines.derive_key(key, k, 1))
        for i, s, r in zip(live, states, resampled):
            t = (
                truth(current[i].problem, current[i].thought_texts)
                if truth and current[i].reward < 1
                else None
            )
            records[i]["resets"].append({"h": h[i], "h_true": t, "fixed": r.reward})
            records[i]["calls"] += 1
            records[i]["tokens"] += r.n_own_tokens
            records[i]["rounds"] += 1
            records[i]["final"] = r.reward
            records[i]["final_text"] = r.text
            current[i] = r
    return records, first


def summarize(records):
    """Pass rates, lift and the ground-truth diagnostics of one strategy."""
    resets = [x for r in records for x in r["resets"] if x["h_true"] is not None and x["h"] is not None]
    verdicts = [v for r in records for v in r["verdicts"]]
    judged = [(v, reward) for r in records for v, reward in zip(r["verdicts"], r["judged"])]

    def mean(xs):
        return float(np.mean(xs)) if xs else None

    first, final = mean([r["first"] for r in records]), mean([r["final"] for r in records])
    return {
        "first": first,
        "final": final,
        "lift": final - first,
        "calls": mean([r["calls"] for r in records]),
        "tokens": mean([r["tokens"] for r in records]),
        "loc_acc": mean([x["h"] == x["h_true"] for x in resets]),
        "fix_clean": mean([x["fixed"] for x in resets if x["h"] <= x["h_true"]]),
        "fix_erroneous": mean([x["fixed"] for x in resets if x["h"] > x["h_true"]]),
        "verdict_unparsed": mean([v is None for v in verdicts]) if verdicts else None,
        "verdict_acc": mean([v == (reward == 1) for v, reward in judged if v is not None]),
    }


def table(results):
    """Markdown: one row per (benchmark, strategy)."""

    def f(v, pct=True):
        return "-" if v is None else (f"{100 * v:.1f}" if pct else f"{v:.1f}")

    lines = [
        "| benchmark | strategy | first attempt | final | lift | calls / problem | tokens / problem | "
        "localization accuracy | fix rate clean | fix rate erroneous | verifier accuracy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    names = {"localize": "Thought-ICS", "random": "random reset", "restart": "from scratch"}
    for bench, by in results.items():
        for s, m in by.items():
            lift = "-" if m["lift"] is None else f"{100 * m['lift']:+.1f}"
            lines.append(
                f"| {bench} | {names[s]} | {f(m['first'])} | {f(m['final'])} | {lift} | "
                f"{f(m['calls'], False)} | {f(m['tokens'], False)} | {f(m['loc_acc'])} | "
                f"{f(m['fix_clean'])} | {f(m['fix_erroneous'])} | "
                f"{f(m['verdict_acc'])} |"
            )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Thought-ICS: localize, reset and resample at inference time",
        epilog="The Thought-MDP caps default to the paper's (App. C), shown above, or to the "
        "classroom world's (H + 2 thoughts x 24 tokens for chains of H steps) with --model tiny-world.",
    )
    parser.add_argument(
        "--model", default="tiny-world", help="tiny-world, smollm2-135m, Hub id or local folder"
    )
    parser.add_argument(
        "--benchmarks", default="tiny-world", help="comma-separated names of benchmarks.py's benchmarks"
    )
    parser.add_argument(
        "--n", type=int, default=256, help="problems per benchmark (a sample drawn with the run key)"
    )
    parser.add_argument(
        "--verify",
        choices=["oracle", "self"],
        default="oracle",
        help="who says an answer is wrong: the benchmark's grader, or the model itself",
    )
    parser.add_argument("--rounds", type=int, default=3, help="K: Thought-ICS rounds after the first attempt")
    parser.add_argument(
        "--match",
        choices=["calls", "rounds"],
        default="calls",
        help="baselines get the model calls of K Thought-ICS rounds (default), or K rounds too",
    )
    parser.add_argument(
        "--run-key", "--seed", type=int, default=0, help="the random key (--seed: its old name, deprecated)"
    )
    parser.add_argument("--out", default="runs/thought-ics", help="output folder")
    parser.add_argument(
        "--engine",
        choices=gpus.ENGINES,
        default="auto",
        help="auto: vllm when its GPU build imports and a GPU is present",
    )
    parser.add_argument(
        "--tp", type=int, default=0, help="vLLM tensor parallel size (GPUs); 0 = every visible GPU"
    )
    # default: the classroom world's caps for tiny-world, else the paper's
    tm.add_flags(parser, tm.ThoughtConfig)
    args = parser.parse_args(argv)
    if problem := benchmarks.name_problem(args.model, *args.benchmarks.split(",")):
        parser.error(problem)
    cfg = dataclasses.replace(benchmarks.default_caps(args.model), **tm.given(args, tm.ThoughtConfig))
    engine = benchmarks.inference_engine(args.model, args.engine, args.out, cfg, args.tp, key=args.run_key)[0]
    results, raw = {}, {}
    for bench in args.benchmarks.split(","):
        problems = benchmarks.load_benchmark(bench, args.n, args.run_key)
        truth = tiny_world.first_error if tiny_world.parse(bench) else None  # the first error is known there
        first = None
        for strategy in STRATEGIES:
            records, first = correct(
                engine,
                problems,
                strategy,
                args.verify,
                args.rounds,
                cfg,
                args.run_key,
                first,
                truth,
                args.match,
            )
            results.setdefault(bench, {})[strategy] = summarize(records)
            raw.setdefault(bench, {})[strategy] = records
            m = results[bench][strategy]
            print(
                f"{bench} {strategy}: first {m['first']:.3f} -> final {m['final']:.3f} "
                f"({m['calls']:.1f} calls/problem)"
            )
    md = table(results)
    os.makedirs(args.out, exist_ok=True)
    name = f"{args.benchmarks.replace(',', '+')}_{args.verify}" + (
        "" if args.match == "calls" else "_equal_rounds"
    )
    with open(os.path.join(args.out, name + ".md"), "w") as fh:
        fh.write(md + "\n")
    with open(os.path.join(args.out, name + ".json"), "w") as fh:
        json.dump({"args": vars(args), "summary": results, "records": raw}, fh, indent=1)
    print("\n" + md)
    return results


if __name__ == "__main__":
    main()
