"""regime_map.py: where should resets pay? GRPO, RRPO and SRPO on tabular chains, in numpy (Sec. 3, 4.2-4.3).

Theorem 1 says a credit-assignment oracle beats random resets by a factor
that grows as the coverage p of improvable states falls; it does not say
when either beats plain outcome-reward GRPO at equal cost. This file is a
quantitative prediction for that, cheap enough to map: the three methods of
Sec. 4.2 (with the paper's loss of Sec. 4.3) on chain problems of H steps,
m of them uncertain, counting the generated steps each needs to reach a pass
rate. The classroom world (tiny_world.py) is the neural test of the same map.

Paper map
  Sec. 3, Thm. 1   the oracle's reset against a random one, as a cost to a
                   pass rate rather than a bound                     ORACLE against RRPO in regime_map()
  Sec. 4.2, Alg. 2 the 1x4 buffer: search, base group, seed, h*, 4 suffixes   reset_step()
  Sec. 4.3         the loss: A_i / T_i over each rollout's own steps   accumulate(), grpo_step()

Choices: the tabular model (its assumptions)
  * A chain of H steps; at step h the policy picks one of 4 actions with
    its own softmax (logits theta[h]); action 0 is right. A rollout is
    correct (reward 1) only if every step is right: errors are fatal, but a
    failed rollout still generates all H steps, as a language model does not
    know it has failed. One step = one generated token of the cost.
  * At the start, m uncertain steps (evenly spaced, the last one at step H)
    are right with probability a, the others with probability `easy`
    (0.99: the classroom world's easy steps slip about 1% of the time). The
    start pass rate is p0 = a^m easy^(H - m).
  * Every prompt is the same chain (the policy is tabular in the step).
    A step samples B prompts; its update is plain gradient ascent on the
    logits with learning rate lr (no Adam), the gradient of the paper's loss:
    the mean over the step's rollouts of A_i / T_i times the sum over the
    rollout's own steps of grad log pi (T_i: its own steps; `constant`
    normaliser: T_i = H for every rollout, the control of the issue).
  * GRPO: G = 8 rollouts a prompt, one group. RRPO and SRPO: the 1x4 buffer
    of Algorithm 2 as rrpo.py builds it (a stream until the first failure,
    at most 12 rows; the first 4 others are the base group; 4 suffixes from
    the seed's prefix before h*, trained on their own steps; with no failure,
    one group of 8: the first 4 rows and 4 fresh ones). RRPO: h* uniform.
    ORACLE: h* is the seed's first wrong step. NOISY: the oracle with
    probability `loc_acc`, else a uniform step.
  * Cost: generated steps, the stream rows the sequential search needs (up
    to the row that completes the base group and the seed) and the suffixes'
    own steps. The oracle's localization is free.

  * The learning rate (2.0), the threshold (0.8) and the budget (2M steps)
    are the same for every method and cell, set once when this file was
    written, before any run; no method is tuned.

Symbols
  theta        -> (H, 4) logits; pi = softmax(theta)
  p0, p        -> start pass rate, prod_h pi[h, 0]
  tokens       -> generated steps to reach the threshold pass rate (inf: not within the budget)

Run it
  python regime_map.py --out docs/regime-map   # the map: its table and figure, a few minutes
  python regime_map.py --quick                 # a smaller map, seconds
"""

import argparse
import math
import os
from dataclasses import dataclass

import numpy as np

ACTIONS = 4  # one right action (0) and three wrong ones
# GRPO's rollouts are all H steps long, so its normaliser is already constant
METHODS = ("grpo", "rrpo", "oracle", "noisy", "rrpo-const", "oracle-const")


@dataclass
class Chain:
    horizon: int = 8  # H, steps
    uncertain: int = 1  # m, uncertain steps
    a: float = 0.1  # an uncertain step's chance of being right at the start
    easy: float = 0.99  # the other steps' chance

    def start_logits(self):
        """theta whose softmax gives `a` (uncertain) or `easy` to action 0, the rest equal."""
        p = np.full(self.horizon, self.easy)
        p[self.uncertain_steps()] = self.a
        theta = np.zeros((self.horizon, ACTIONS))
        theta[:, 0] = np.log(p * (ACTIONS - 1) / (1 - p))
        return theta

    def uncertain_steps(self):
        return (
            np.round(np.linspace(self.horizon / self.uncertain, self.horizon, self.uncertain)).astype(int) - 1
        )

    def p0(self):
        return self.a**self.uncertain * self.easy ** (self.horizon - self.uncertain)


def softmax(theta):
    z = np.exp(theta - theta.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def pass_rate(theta):
    return float(np.prod(softmax(theta)[:, 0]))


def exact_gradient(theta):
    """The gradient of the pass rate J = prod_h pi_h(0) in the logits: J (e_0 - pi_h) at
    every step h (the known answer the reference gradient of mechanism.py is checked on)."""
    pi = softmax(theta)
    return pass_rate(theta) * (np.eye(ACTIONS)[0] - pi)


def sample(pi, shape, rng):
    """Actions of shape (*shape, H): each step's action drawn from its softmax."""
    u = rng.random((*shape, pi.shape[0], 1))
    return (u > np.cumsum(pi, -1)).sum(-1)  # inverse CDF, (*shape, H)


def advantages(rewards):
    """Group-normalised advantages along the last axis (0 where a group is all equal)."""
    std = rewards.std(-1, keepdims=True)
    return np.where(std > 0, (rewards - rewards.mean(-1, keepdims=True)) / np.where(std > 0, std, 1), 0.0)


def accumulate(grad, pi, actions, weights, own):
    """grad += sum over rollouts and their own steps of weight * (onehot(y_h) - pi_h).
    actions (n, H), weights (n,), own (n, H) 0/1."""
    w = weights[:, None] * own  # (n, H)
    onehot = np.eye(ACTIONS)[actions]  # (n, H, A)
    grad += np.einsum("nh,nha->ha", w, onehot) - w.sum(0)[:, None] * pi


def grpo_step(theta, B, rng):
    pi = softmax(theta)
    H = theta.shape[0]
    acts = sample(pi, (B, 8), rng)  # (B, 8, H)
    r = (acts == 0).all(-1).astype(float)
    adv = advantages(r)  # (B, 8)
    grad = np.zeros_like(theta)
    accumulate(grad, pi, acts.reshape(-1, H), adv.reshape(-1) / H / (B * 8), np.ones((B * 8, H)))
    return grad, B * 8 * H


def reset_step(theta, B, rng, rule, constant, loc_acc=0.5, budget=12):
    """One step of the 1x4 buffer for B prompts: (gradient, generated steps)."""
    pi = softmax(theta)
    H = theta.shape[0]
    stream = sample(pi, (B, budget), rng)  # (B, 12, H): the search's rows, drawn up to the budget
    right = stream == 0
    correct = right.all(-1)  # (B, 12)
    grad = np.zeros_like(theta)
    rollouts, weights, owns = [], [], []
    tokens = 0
    n_rollouts = B * 8

    def train_on(group, weight, own):  # a group of the buffer: its actions, A_i / T_i, its own steps
        rollouts.append(group)
        weights.append(weight)
        owns.append(own)

    for b in range(B):
        failed = np.flatnonzero(~correct[b])
        if not len(failed):  # the fallback: the first 4 rows and 4 fresh ones, one group
            fresh = sample(pi, (4,), rng)
            group = np.concatenate([stream[b, :4], fresh])
            adv = advantages((group == 0).all(-1).astype(float))
            train_on(group, adv / H, np.ones((8, H)))
            tokens += (budget + 4) * H
            continue
        s = failed[0]
        base_rows = [i for i in range(budget) if i != s][:4]
        tokens += (max(s, base_rows[-1]) + 1) * H  # the rows the sequential search draws
        base = stream[b, base_rows]
        adv = advantages((base == 0).all(-1).astype(float))
        train_on(base, adv / H, np.ones((4, H)))
        seed = stream[b, s]
        first_error = int(np.flatnonzero(seed != 0)[0]) + 1  # 1-based
        if rule == "rrpo" or (rule == "noisy" and rng.random() >= loc_acc):
            h = int(rng.integers(1, H + 1))
        else:
            h = first_error
        suffix = sample(pi, (4,), rng)
        suffix[:, : h - 1] = seed[: h - 1]  # x*: the seed's prefix before h*
        adv = advantages((suffix == 0).all(-1).astype(float))
        own = np.zeros((4, H))
        own[:, h - 1 :] = 1
        n_own = H - h + 1
        train_on(suffix, adv / (H if constant else n_own), own)
        tokens += 4 * n_own
    accumulate(
        grad,
        pi,
        np.concatenate(rollouts),
        np.concatenate(weights) / n_rollouts,
        np.concatenate(owns),
    )
    return grad, tokens


def run(method, chain, key, lr=2.0, B=8, threshold=0.8, max_tokens=2_000_000):
    """Generated steps until the pass rate reaches `threshold` (inf if not within max_tokens)."""
    rng = np.random.default_rng(key)
    theta = chain.start_logits()
    constant = method.endswith("-const")
    base = method.removesuffix("-const")
    tokens = 0
    while tokens < max_tokens:
        if pass_rate(theta) >= threshold:
            return tokens
        if base == "grpo":
            grad, used = grpo_step(theta, B, rng)
        else:
            grad, used = reset_step(theta, B, rng, base, constant)
        theta += lr * grad
        tokens += used
    return math.inf


def cells(quick=False):
    """(m, a) cells of H = 8 chains, start pass rates from about 0.3 down to about 0.001."""
    targets = (0.3, 0.03, 0.003) if quick else (0.3, 0.1, 0.03, 0.01, 0.003, 0.001)
    chains = []
    for m in (1, 4, 8):
        for p0 in targets:
            a = (p0 / 0.99 ** (8 - m)) ** (1 / m)
            chains.append(Chain(8, m, float(a)))
    return chains


def regime_map(quick=False, keys=4, methods=METHODS):
    """One row per cell: the median generated steps to the threshold per method."""
    rows = []
    for chain in cells(quick):
        medians = {m: float(np.median([run(m, chain, k) for k in range(keys)])) for m in methods}
        rows.append({"m": chain.uncertain, "a": chain.a, "p0": chain.p0(), **medians})
        print(format_row(rows[-1], methods), flush=True)
    return rows


def format_row(row, methods):
    def cost(x):
        return "never" if math.isinf(x) else f"{x / 1e3:.0f}k"

    ratios = ", ".join(f"{row['grpo'] / row[m]:.2f}" if not math.isinf(row[m]) else "-" for m in methods[1:])
    return (
        f"| {row['m']} | {row['a']:.3f} | {row['p0']:.3f} | "
        + " | ".join(cost(row[m]) for m in methods)
        + f" | {ratios} |"
    )


HEADER = (
    "| m | a | p0 | "
    + " | ".join(METHODS)
    + " | GRPO's cost / each other method's ("
    + ", ".join(METHODS[1:])
    + ") |\n|"
    + " --- |" * (len(METHODS) + 4)
)


def plot(rows, path):
    """GRPO's generated steps over each method's against p0, a panel per m (above 1: cheaper)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = sorted({r["m"] for r in rows})
    fig, axes = plt.subplots(1, len(ms), figsize=(4 * len(ms), 3.5), sharey=True)
    for ax, m in zip(np.atleast_1d(axes), ms):
        cell = [r for r in rows if r["m"] == m]
        p0 = [r["p0"] for r in cell]
        for method in METHODS[1:]:
            ratio = [r["grpo"] / r[method] if not math.isinf(r[method]) else np.nan for r in cell]
            ax.plot(p0, ratio, "o-" if "const" not in method else "s--", label=method)
        ax.axhline(1, color="0.5", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_yticks([0.5, 1, 2, 4], ["0.5", "1", "2", "4"])
        ax.minorticks_off()
        ax.invert_xaxis()
        ax.set_xlabel("start pass rate p0")
        ax.set_title(f"H = 8, m = {m} uncertain step{'s' if m > 1 else ''}")
    np.atleast_1d(axes)[0].set_ylabel("GRPO's generated steps / method's")
    np.atleast_1d(axes)[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description="The regime map: where resets pay on tabular chains.")
    parser.add_argument("--quick", action="store_true", help="3 start pass rates and 2 keys (seconds)")
    parser.add_argument("--keys", type=int, default=4, help="random keys per cell (the median is reported)")
    parser.add_argument("--out", default="", help="a folder for regime_map.md and regime_map.png")
    args = parser.parse_args(argv)
    if args.keys < 1:
        parser.error(f"--keys must be at least 1, got {args.keys}")
    print(HEADER)
    rows = regime_map(args.quick, 2 if args.quick else args.keys)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "regime_map.md"), "w") as fh:
            fh.write(HEADER + "\n" + "\n".join(format_row(r, METHODS) for r in rows) + "\n")
        plot(rows, os.path.join(args.out, "regime_map.png"))
        print(f"wrote {args.out}/regime_map.md and regime_map.png")
    return rows


if __name__ == "__main__":
    main()
