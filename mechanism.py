"""mechanism.py: what a reset buffer does to the gradient, measured at a fixed policy (Sec. 4.2-4.3, App. G).

A comparison of learning curves says whether resets paid; it does not say
why. This file holds the policy fixed (the classroom world's warm start, or a
trained run's checkpoint), draws many buffers of each method without
updating, and measures what each buffer would do to the policy, per 1,000
sampled tokens: how many of its groups carry signal (a group whose rewards
all agree has zero advantages and no gradient), how far its gradient points
along a reference policy gradient, and where App. G's per-token gradient
signal lands: on the ground-truth first erroneous thought of a failed
rollout, on the right thoughts before it, or after it. For GRPO groups it
also measures how often rollouts of one group share their first thought, the
prefix sharing through which GRPO's group baseline already acts as a value of
that prefix.

Paper map
  Sec. 4.2, Alg. 2   the buffers of GRPO, RRPO, SRPO and the oracle reset,
                     drawn as training draws them (rrpo.py, srpo.py,
                     compare_resets.RULES)                               draw()
  Sec. 4.3           the loss whose gradient is measured (grpo.pg_loss)  buffer_gradient()
  App. G             g_it = (|A_i| / T_i)(1 - pi(y_it)) over active tokens,
                     summed per thought                                 signal_by_thought()

Symbols
  g          -> a buffer's gradient of the paper's loss (descent direction negated: the ascent direction)
  g_ref      -> the reference: the mean ascent direction of `ref_batches` large GRPO buffers
  cos        -> cosine(g, g_ref); proj -> g . g_ref / |g_ref|, per 1,000 sampled tokens
  h_first    -> tiny_world.first_error(problem, thoughts), 1-based

Choices, and why
  * The reference is an estimate of the true policy gradient: GRPO's mean
    over many prompts, each with normalised advantages. Its direction is what
    matters; the tabular check (tests) shows that the mean of many such
    batches points along the exact gradient of the pass rate.
  * A buffer's own gradient is compared with a reference drawn from other
    random keys, so a buffer never correlates with itself.
  * Intervals are 95% normal intervals over buffers (mean +- 1.96 SE).

Run it
  python mechanism.py                                   # the default world's warm start, a few minutes
  python mechanism.py --model tiny-world:horizon=16:hard_at=late:hard_share=0.3
  python mechanism.py --adapter RUN                     # at a training run's checkpoint instead
  python mechanism.py --buffers 4 --ref-batches 2       # a quick look
"""

import argparse
import dataclasses
import json
import os

import numpy as np
import torch

import compare_resets
import config
import engines
import grpo
import rrpo
import tiny_world

METHODS = ("grpo", "rrpo", "oracle", "srpo")


def draw(engine, problems, cfg, step, method):
    """One buffer of `method` for `problems`, as training draws it: (groups, stats)."""
    if method == "grpo":
        groups, stats = grpo.build_buffer(engine, problems, cfg, step)
    else:
        groups, stats = rrpo.reset_buffer(engine, problems, cfg, step, compare_resets.RULES[method])
    for g in groups:
        g.advantages = grpo.group_advantages([r.reward for r in g.rollouts])
    return groups, stats


def buffer_gradient(model, groups, cfg, pad_id):
    """The ascent direction of the paper's loss on this buffer (a flat vector), and the
    per-rollout log-probabilities and masks of the rollouts that carry signal."""
    model.zero_grad(set_to_none=True)
    items = [(r, a) for g in groups for r, a in zip(g.rollouts, g.advantages)]
    active = [(r, a) for r, a in items if a != 0]
    kept = []
    for k in range(0, len(active), 16):
        micro = active[k : k + 16]
        logp, mask = grpo.token_logprobs(model, [r for r, _ in micro], pad_id, cfg.thought.temperature)
        adv = torch.stack([a for _, a in micro]).to(logp.device)
        (grpo.pg_loss(logp, adv, mask) * len(micro) / len(items)).backward()
        kept += [(r, a, lp, m) for (r, a), lp, m in zip(micro, logp.detach(), mask)]
    params = [p for p in model.parameters() if p.requires_grad]
    flat = torch.cat([(-p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
    return flat, kept


def signal_by_thought(rollout, adv, logp, mask):
    """App. G's g_it summed over each thought of the rollout's response: a list, one
    float per thought (the prefix's thoughts get 0: they are masked)."""
    K = logp.shape[0]
    n = len(rollout.response_ids)
    g = (abs(float(adv)) / float(mask.sum())) * (1 - logp.exp()) * mask  # (K,)
    g = g[K - n :].tolist()  # the response's positions
    out, at = [], 0
    for thought in rollout.thought_ids:
        out.append(sum(g[at : at + len(thought)]))
        at += len(thought)
    return out


def where_signal_lands(kept):
    """Shares of App. G's signal of failed rollouts on their first wrong thought, on the
    right thoughts before it, and after it (rollouts whose first error is known)."""
    first = before = after = 0.0
    for r, a, lp, m in kept:
        h = tiny_world.first_error(r.problem, r.thought_texts)
        if r.reward >= 1 or h is None:
            continue
        per = signal_by_thought(r, a, lp, m)
        before += sum(per[: h - 1])
        first += per[h - 1] if h <= len(per) else 0.0
        after += sum(per[h:])
    total = first + before + after
    return (first / total, before / total, after / total) if total else (np.nan, np.nan, np.nan)


def prefix_sharing(groups):
    """For GRPO's groups: the share of rollout pairs in a group whose first thoughts are
    the same tokens."""
    shared = []
    for g in groups:
        firsts = [tuple(r.thought_ids[0]) if r.thought_ids else () for r in g.rollouts]
        n = len(firsts)
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        shared += [firsts[i] == firsts[j] for i, j in pairs]
    return float(np.mean(shared)) if shared else np.nan


def interval(values):
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return np.nan, np.nan
    se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan
    return float(v.mean()), float(1.96 * se)


def measure(world, buffers=16, ref_batches=8, prompts=8, adapter="", methods=METHODS, key=7):
    """The table's rows: per method, mean and 95% half-width of each measure over `buffers` buffers."""
    cfg = config.parse_config(["--demo", "--model", world, "--prompts-per-step", str(prompts)], "srpo")
    model, tokenizer = grpo.load_policy(cfg, "hf")
    if adapter:  # a trained run's weights instead of the warm start
        import runs

        model = runs.load_policy(model, adapter)
    model.eval()
    engine = engines.HFEngine(model, tokenizer, cfg.gen_batch_size)
    problems = grpo.training_problems(cfg)
    rng = np.random.default_rng(key)

    def batch(n):
        return [problems[i] for i in rng.choice(len(problems), n, replace=False)]

    ref_cfg = dataclasses.replace(cfg, run_key=key + 1)  # other keys than the buffers'
    reference = sum(
        buffer_gradient(model, draw(engine, batch(4 * prompts), ref_cfg, s, "grpo")[0], cfg, engine.pad_id)[0]
        for s in range(ref_batches)
    )
    unit = reference / reference.norm()
    rows = []
    for method in methods:
        per = {k: [] for k in ("signal", "proj", "cos", "first", "before", "after", "shared", "tokens")}
        for s in range(buffers):
            groups, stats = draw(engine, batch(prompts), cfg, 1000 + s, method)
            tokens = stats["tokens/base"] + stats["tokens/suffix"] + stats["tokens/localize"]
            grad, kept = buffer_gradient(model, groups, cfg, engine.pad_id)
            norm = float(grad.norm())
            carrying = sum(bool((g.advantages != 0).any()) for g in groups)
            per["tokens"].append(tokens)
            per["signal"].append(1000 * carrying / tokens)
            per["proj"].append(1000 * float(grad @ unit) / tokens)
            per["cos"].append(float(grad @ unit) / norm if norm > 0 else np.nan)
            first, before, after = where_signal_lands(kept)
            per["first"].append(first)
            per["before"].append(before)
            per["after"].append(after)
            if method == "grpo":
                per["shared"].append(prefix_sharing(groups))
        rows.append({"method": method, **{k: interval(v) for k, v in per.items()}})
        print(format_row(rows[-1]), flush=True)
    return rows


HEADER = (
    "| method | sampled tokens | groups with signal / 1k tokens | projection on g_ref / 1k tokens | "
    "cosine with g_ref | App. G signal on the first wrong thought | on right thoughts before it | "
    "after it | GRPO: pairs sharing a first thought |\n|" + " --- |" * 9
)


def format_row(row):
    def cell(name, digits=3):
        mean, half = row[name]
        return "-" if not np.isfinite(mean) else f"{mean:.{digits}f} ± {half:.{digits}f}"

    cells = [cell("tokens", 0), cell("signal"), cell("proj", 4), cell("cos"), cell("first")]
    cells += [cell("before"), cell("after"), cell("shared")]
    return f"| {row['method'].upper()} | " + " | ".join(cells) + " |"


def main(argv=None):
    parser = argparse.ArgumentParser(description="The credit-assignment mechanism at a fixed policy.")
    parser.add_argument(
        "--model", default="tiny-world", help="a classroom world: tiny-world[:knob=value,...]"
    )
    parser.add_argument(
        "--adapter", default="", help="a training run folder: its weights instead of the warm start"
    )
    parser.add_argument("--buffers", type=int, default=16, help="buffers drawn per method")
    parser.add_argument("--ref-batches", type=int, default=8, help="GRPO buffers of 4x the prompts in g_ref")
    parser.add_argument("--out", default="", help="a folder for mechanism.md and mechanism.json")
    args = parser.parse_args(argv)
    if not tiny_world.parse(args.model):
        parser.error(f"--model: {args.model!r} is not a classroom world (tiny-world[:knob=value,...])")
    for flag, value in (("--buffers", args.buffers), ("--ref-batches", args.ref_batches)):
        if value < 2:
            parser.error(f"{flag} must be at least 2 (an interval needs two), got {value}")
    print(HEADER)
    rows = measure(args.model, args.buffers, args.ref_batches, adapter=args.adapter)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "mechanism.md"), "w") as fh:
            fh.write(HEADER + "\n" + "\n".join(format_row(r) for r in rows) + "\n")
        with open(os.path.join(args.out, "mechanism.json"), "w") as fh:
            json.dump(rows, fh, indent=2)
    return rows


if __name__ == "__main__":
    main()
