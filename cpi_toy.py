"""cpi_toy.py: Theorem 1 of the paper, measured on tabular MDPs.

CPI with random resets (CPI-RR) against CPI with a credit-assignment reset
oracle (CPI-CARO). Theorem 1 / Table 1 say that, when the policy reaches a
tau-improvable state with on-policy probability p, CPI-CARO needs a factor
1/p^2 fewer Q-rollouts and improves J a factor 1/p more per iteration. This
file runs Algorithm 1 in both variants on a family of MDPs whose coverage p is
a dial, and fits the rates on a log-log scale.

Paper map (read the paper beside this file, top to bottom)
  Sec. 2-3.1      MDPs, V/Q/A, d_pi^h, J, G_{h,tau}, coverage, and the
                  MDP family of the experiments (App. A.3)      tabular_mdp.py
  Alg. 1 l.1-6    Phase 1, Q-sampling                            q_sampling()  (and its fast twin)
  App. B, Alg. 3  credit sampler by rejection sampling           credit_sampler()
  Alg. 1 l.7-9    Phase 2, regression, greedy policy, A-hat      fit_q(), greedy(), advantage_estimate()
  Alg. 1 l.10-13  Phase 3, step size and conservative mixture    step_size(), mixture()
  Thm. 1, Tab. 1  rates against p, lower bounds                  measure_rates(), fit_slope()
  Eq. (1), (2)    CPI lower bounds                               checked in tests/test_cpi_toy.py

Symbols (S states, A actions, H horizon; ... = leading trial axes)
  X, Y               -> range(S), range(A)
  P_h(x'|x,y)        -> mdp.P     (H, S, A, S)
  r_h(x,y)           -> mdp.r     (H, S, A)  mean reward; observed reward ~ Bernoulli(r)
  R_max              -> 1.0       (rewards in {0, 1}: an RLVR-style 0/1 outcome each step)
  mu                 -> mdp.mu    (S,)
  pi_h(y|x)          -> pi        (..., H, S, A) rows on the simplex
  V_h, Q_h, A_h      -> V (..., H+1, S), Q (..., H, S, A), A (..., H, S, A)
  d_pi^h(x)          -> d         (..., H, S)
  G_{h,tau}          -> G         (H, S) bool
  p_pi               -> p         coverage, time-averaged
  pi^+, hat pi^+     -> pi_plus   (..., H, S, A) one-hot rows
  hat Q_i, hat Q     -> samples["q"] (n,), Q_hat (..., H, S, A) (NaN where no data)
  hat A (line 9)     -> A_hat     (...,)
  hat alpha          -> alpha     (...,)
  n                  -> n         Q-rollouts per CPI iteration

Deviations from the paper, and why
  * Rewards are Bernoulli with mean r_h(x,y) in [0, 1] (R_max = 1), so that a
    Q-rollout is a noisy 0/1-outcome estimate as in RLVR; Theorem 1 only needs
    bounded rewards.
  * Line 7's function class is the tabular one (one value per (x, y, h)), which
    is realizable; its least-squares fit is the cell mean. Cells without data
    are left undefined (NaN); line 8 takes the argmax over visited actions, and
    at a state with no visited action the greedy policy keeps pi (no update).
  * Line 9 averages over a held-out half of the n samples (cross-fitting); the
    other half fits lines 7-8. Reusing the same samples biases A-hat upward
    (the argmax's winner's curse), see cpi_update().
  * Lines 10-11 can give alpha <= 0 when A-hat <= 0 (App. A.3, Prop. 10: no
    valid mixture). We clip alpha to [0, 1]; alpha = 0 means no update.
  * The experiments draw Phase 1's sufficient statistics (per-cell counts and
    return sums) directly from their exact distribution instead of looping over
    the n samples: q_sampling_stats(). This is equal in distribution to
    q_sampling() (a test checks it) and makes n = 10^8 cost the same as n = 10,
    which CPI-RR needs at small p. The per-sample version is the readable one.
  * Improvable states are exactly those with max_y A >= tau - 1e-9; the
    tolerance only absorbs floating-point error in A = Q - V.

Run it
  python cpi_toy.py --quick           # about 2 s: fewer p values and trials
  python cpi_toy.py                   # the default run, about 6 s on 2 cores
  python cpi_toy.py --horizon 5 --actions 4 --tau 0.2 --run-key 3 --out runs/cpi_h5
  python cpi_toy.py --family trap     # transitions that depend on the action (tabular_mdp.fork_mdp)
It prints the table, and writes DIR/cpi_rates.json and DIR/cpi_rates.png.
"""

import argparse
import dataclasses
import json
import os
import time
from dataclasses import dataclass

import numpy as np

from tabular_mdp import (
    R_MAX,
    J,
    coverage,
    evaluate,
    fork_mdp,
    greedy_policy,
    improvable_set,
    policy_advantage,
    return_distribution,
    state_distributions,
)

# -----------------------------------------------------------------------------
# Config


FAMILIES = ("fork", "trap")  # the MDP families of tabular_mdp.fork_mdp


@dataclass
class Config:
    # the MDP family (fork_mdp)
    horizon: int = 3  # H, steps per episode
    actions: int = 3  # |Y|, actions per state
    tau: float = 0.3  # tau, improvability threshold; also the fork's advantage (<= 0.5)
    routine: int = 3  # number of routine (never improvable) states
    # fork (transitions ignore the action) or trap (a worse action at the fork absorbs, reward 0)
    family: str = "fork"
    # the sweep over coverage p
    p_min: float = 0.01  # smallest coverage p
    p_max: float = 0.4  # largest coverage p
    n_p: int = 7  # number of p values, geometric between p_min and p_max
    # Algorithm 1 and the sample-complexity criterion
    trials: int = 400  # independent runs of Algorithm 1 per (p, n)
    fraction: float = 0.5  # success = improvement >= fraction * oracle improvement
    delta: float = 0.1  # n* = smallest grid n with success rate >= 1 - delta
    grid_step: float = 2**0.25  # ratio between consecutive n on the geometric grid
    n_first: int = 8  # smallest n on the grid
    n_last: float = 2.0**38  # largest n on the grid (never reached in practice)
    bootstrap: int = 1000  # bootstrap resamples of the trials for slope CIs
    # bookkeeping
    run_key: int = 0  # the random key of the MDP family and of every draw (--seed: its old name)
    out: str = "runs/cpi_toy"  # output folder
    quick: bool = False  # smaller sweep for smoke tests


def parse_config(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        if field.type is bool or field.type == "bool":
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(
                flag,
                type=type(field.default),
                default=field.default,
                choices=FAMILIES if field.name == "family" else None,
            )
    parser.add_argument("--seed", dest="run_key", type=int, help="old name of --run-key, deprecated")
    cfg = Config(**vars(parser.parse_args(argv)))
    if cfg.quick:  # the smoke-test preset: a decade of p, fewer trials
        cfg.n_p, cfg.p_min, cfg.p_max = 6, 0.02, 0.32
        cfg.trials, cfg.bootstrap = min(cfg.trials, 100), min(cfg.bootstrap, 300)
    assert 0 < cfg.tau <= 0.5 * R_MAX, "the fork's better action gets r = 1/2 + tau <= R_max"
    assert cfg.actions >= 2 and cfg.horizon >= 1 and cfg.routine >= 1
    assert 0 < cfg.p_min < cfg.p_max < 1 and cfg.n_p >= 2
    return cfg


# -----------------------------------------------------------------------------
# Alg. 1, Phase 1: Q-sampling, one sample at a time (vectorised over samples)


def sample_index(probs, rng):
    """One draw from each row of `probs` (..., K) -> (...,) int."""
    u = rng.random(probs.shape[:-1] + (1,))
    return np.minimum((probs.cumsum(-1) < u).sum(-1), probs.shape[-1] - 1)


def on_policy_draws(mdp, pi, m, rng):
    """m draws of h ~ Unif[H], x ~ d_pi^h, each by one reset: roll pi from mu for h-1 steps."""
    h = rng.integers(0, mdp.H, size=m)  # 0-based time
    x = sample_index(np.broadcast_to(mdp.mu, (m, mdp.S)), rng)
    for t in range(mdp.H - 1):
        going = h > t  # only draws that have not reached their time move on
        y = sample_index(pi[t, x[going]], rng)
        x[going] = sample_index(mdp.P[t, x[going], y], rng)
    return x, h


def credit_sampler(mdp, pi, G, n, rng):
    """Alg. 3: rejection sampling of (x, h) ~ d_pi^h conditioned on x in G_{h,tau}.
    Returns n accepted pairs and the number of cheap calls (reset + oracle query)."""
    xs, hs, cheap_calls = [], [], 0
    while sum(len(x) for x in xs) < n:  # Alg. 3, line 2
        x, h = on_policy_draws(mdp, pi, max(n, 64), rng)  # Alg. 3, line 3, in batches
        keep = G[h, x]  # Alg. 3, line 4: O(x, h) = 1
        # count the trials up to the n-th acceptance exactly, as a loop would
        need = n - sum(len(x_) for x_ in xs)
        last = np.flatnonzero(keep)[need - 1] + 1 if keep.sum() >= need else len(x)
        cheap_calls += last
        xs.append(x[:last][keep[:last]])
        hs.append(h[:last][keep[:last]])
    return np.concatenate(xs), np.concatenate(hs), cheap_calls


def q_rollout(mdp, pi, x, y, h, rng):
    """Alg. 1, line 5: play y at (x, h), then pi to the horizon; return the sum of
    observed 0/1 rewards, an unbiased estimate of Q_h(x, y). Vectorised over samples."""
    x, y = x.copy(), y.copy()
    q = np.zeros(len(x))
    for t in range(mdp.H):
        live = h <= t  # rollouts that have started by time t
        follow = h < t  # after its first action a rollout plays pi
        y[follow] = sample_index(pi[t, x[follow]], rng)
        q[live] += rng.random(live.sum()) < mdp.r[t, x[live], y[live]]  # r ~ Bernoulli
        if t < mdp.H - 1:
            x[live] = sample_index(mdp.P[t, x[live], y[live]], rng)
    return q


def q_sampling(mdp, pi, n, rng, G=None):
    """Alg. 1, lines 1-6. G=None: CPI-RR's on-policy sampler (line 2); G given:
    CPI-CARO's credit sampler (line 3). Returns the n samples and the call counts."""
    if G is None:
        x, h = on_policy_draws(mdp, pi, n, rng)  # Alg. 1, line 2
        cheap_calls = n
    else:
        x, h, cheap_calls = credit_sampler(mdp, pi, G, n, rng)  # Alg. 1, line 3
    y = rng.integers(0, mdp.A, size=n)  # Alg. 1, line 4: y ~ Unif(Y)
    q = q_rollout(mdp, pi, x, y, h, rng)  # Alg. 1, line 5
    return dict(x=x, y=y, h=h, q=q), dict(cheap_calls=cheap_calls, q_rollouts=n)


def cell_statistics(mdp, samples):
    """The tabular regression only sees, per cell (h, x, y), the count and the sum of Q-hat."""
    count = np.zeros((mdp.H, mdp.S, mdp.A))
    total = np.zeros((mdp.H, mdp.S, mdp.A))
    np.add.at(count, (samples["h"], samples["x"], samples["y"]), 1)
    np.add.at(total, (samples["h"], samples["x"], samples["y"]), samples["q"])
    return count, total


# -----------------------------------------------------------------------------
# Alg. 1, Phase 1 again, fast: the same statistics drawn from their exact law


def q_sampling_stats(mdp, pi, n, rng, trials, G=None, law=None):
    """Counts and Q-hat sums per cell for `trials` independent runs of lines 1-6,
    drawn exactly: (count, total) ~ the law of cell_statistics(q_sampling(...)).
    Cells are multinomial in n; given its count, a cell's returns are iid."""
    law = return_distribution(mdp, pi) if law is None else law
    d = state_distributions(mdp, pi)  # (H, S)
    w = d / mdp.H  # P(h, x) on-policy, Alg. 1, line 2
    accept = 1.0
    if G is not None:  # Alg. 1, line 3: conditioned on G (Alg. 3's accepted draws)
        accept = float((w * G).sum())
        w = w * G / accept
    w = np.repeat(w[..., None] / mdp.A, mdp.A, -1)  # (H, S, A), Alg. 1, line 4: y ~ Unif(Y)
    count = rng.multinomial(n, w.ravel() / w.sum(), size=trials)  # (trials, H*S*A)
    hist = rng.multinomial(count, law.reshape(-1, mdp.H + 1))  # (trials, H*S*A, H+1)
    total = hist @ np.arange(mdp.H + 1.0)  # (trials, H*S*A)
    shape = (trials, mdp.H, mdp.S, mdp.A)
    # Alg. 3's cost: n accepted draws take n + NegBinomial(n, p) trials
    cheap = n + (rng.negative_binomial(n, accept, size=trials) if G is not None else 0)
    return count.reshape(shape), total.reshape(shape), dict(cheap_calls=cheap, q_rollouts=n)


# -----------------------------------------------------------------------------
# Alg. 1, Phases 2-3: regression, greedy policy, advantage estimate, update


def fit_q(count, total):
    """Alg. 1, line 7: least squares over the tabular class = the mean of Q-hat in each cell."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)  # (..., H, S, A)


def greedy(Q_hat, pi):
    """Alg. 1, line 8: hat pi^+_h(x) = argmax_y Q-hat(x, y, h) over visited actions;
    where no action of a state was visited, keep pi there."""
    seen = ~np.isnan(Q_hat)
    pi_plus = greedy_policy(np.where(seen, Q_hat, -np.inf))  # (..., H, S, A)
    return np.where(seen.any(-1, keepdims=True), pi_plus, pi)


def advantage_estimate(pi_plus, pi, total, n):
    """Alg. 1, line 9: A-hat = (1/n) sum_i |Y| (hat pi^+(y_i|x_i) - pi(y_i|x_i)) Q-hat_i over the
    held-out half (see cpi_update). The summand depends on the sample only through
    its cell, so the sum over samples is a sum over cells of |Y| (pi^+ - pi) * total."""
    A = pi.shape[-1]
    return (A * (pi_plus - pi) * total).sum((-3, -2, -1)) / n  # (...,)


def step_size(A_hat, H, method):
    """Alg. 1, lines 10-11, clipped below at 0 (App. A.3: A-hat <= 0 gives no valid mixture)."""
    scale = H**2 * R_MAX if method == "rr" else 2 * H**2 * R_MAX  # KL02 / Cor. 5
    return np.clip(A_hat / scale, 0.0, 1.0)


def mixture(pi, pi_plus, alpha, G=None):
    """Alg. 1, lines 12-13: pi_alpha = (1 - alpha) pi + alpha hat pi^+, on all states (CPI-RR)
    or only on G_{h,tau} (CPI-CARO), pi elsewhere."""
    alpha = np.asarray(alpha)[..., None, None, None]
    assert np.all((alpha >= 0) & (alpha <= 1)), "mixture step must lie in [0, 1]"
    mixed = (1 - alpha) * pi + alpha * pi_plus
    if G is not None:
        mixed = np.where(G[..., None], mixed, pi)
    return mixed


def cpi_update(mdp, pi, fit, held, method, G):
    """Alg. 1, lines 7-13, from Phase 1's cell statistics, split in two halves:
    `fit` = (count, total) of the samples that fit Q-hat and the greedy policy,
    `held` = (total, n) of the other half, on which line 9 averages.
    Cross-fitting keeps A-hat unbiased for A_d(hat pi^+), the quantity that the
    proof of Thm. 1 concentrates (App. A.2, Step 3) and that App. A.3's Prop. 10
    estimates. Reusing the fitting samples would add the argmax's winner's curse:
    an upward bias of order sqrt(cells / n) that dwarfs tau * p at small n."""
    Q_hat = fit_q(*fit)  # Alg. 1, line 7
    pi_plus = greedy(Q_hat, pi)  # Alg. 1, line 8
    A_hat = advantage_estimate(pi_plus, pi, *held)  # Alg. 1, line 9
    alpha = step_size(A_hat, mdp.H, method)  # Alg. 1, lines 10-11
    pi_alpha = mixture(pi, pi_plus, alpha, G if method == "caro" else None)  # Alg. 1, lines 12-13
    return pi_alpha, dict(A_hat=A_hat, alpha=alpha)


def oracle_update(mdp, pi, method, G):
    """Alg. 1 with infinite samples: the exact greedy policy and the exact target of
    line 9 (A_{pi,mu}(pi^+) for RR, A^G_{pi,mu}(pi^+) for CARO). Its improvement is
    the yardstick of the sample-complexity criterion."""
    _, Q, A = evaluate(mdp, pi)
    d = state_distributions(mdp, pi)
    pi_plus = greedy_policy(Q)
    if method == "rr":
        A_target = policy_advantage(d, A, pi_plus)
    else:  # E[A_h(x, pi^+) | x in G], h ~ Unif[H], x ~ d^h
        A_target = (d * G * (pi_plus * A).sum(-1)).sum() / (d * G).sum()
    alpha = step_size(A_target, mdp.H, method)
    pi_alpha = mixture(pi, pi_plus, alpha, G if method == "caro" else None)
    return J(mdp, pi_alpha) - J(mdp, pi), float(A_target)


# -----------------------------------------------------------------------------
# Theorem 1: sample complexity and per-iteration improvement against p


def theorem1_bound(method, tau, p, H, A_pi_plus=None):
    """Thm. 1 lower bounds on J(pi_alpha) - J(pi): (a) A(pi^+)^2 / (8 H R_max) for RR
    (>= tau^2 p^2 / (8 H R_max)), (b) tau^2 p / (16 H R_max) for CARO."""
    if method == "rr":
        return A_pi_plus**2 / (8 * H * R_MAX)
    return tau**2 * p / (16 * H * R_MAX)


def n_grid(cfg):
    grid, n = [], float(cfg.n_first)
    while n <= cfg.n_last:
        if not grid or int(round(n)) > grid[-1]:
            grid.append(int(round(n)))
        n *= cfg.grid_step
    return grid


def sweep_n(mdp, pi, G, method, cfg, rng):
    """Run Alg. 1 `trials` times at each grid n until every trial succeeds at two
    grid points in a row. Returns the grid used, the success matrix (N, trials),
    the improvement matrix (N, trials), the oracle improvement and call counts."""
    oracle_gain, A_target = oracle_update(mdp, pi, method, G)
    law = return_distribution(mdp, pi)
    J_pi = J(mdp, pi)
    grid, success, gain, cheap = [], [], [], []
    for n in n_grid(cfg):
        sampler_G = G if method == "caro" else None
        n_fit = n // 2  # Alg. 1, lines 7-8 fit on one half, line 9 averages the other
        fit_count, fit_total, fit_calls = q_sampling_stats(mdp, pi, n_fit, rng, cfg.trials, sampler_G, law)
        _, held_total, held_calls = q_sampling_stats(mdp, pi, n - n_fit, rng, cfg.trials, sampler_G, law)
        pi_alpha, _ = cpi_update(mdp, pi, (fit_count, fit_total), (held_total, n - n_fit), method, G)
        improvement = J(mdp, pi_alpha) - J_pi  # (trials,)
        grid.append(n)
        gain.append(improvement)
        success.append(improvement >= cfg.fraction * oracle_gain)
        cheap.append(np.mean(fit_calls["cheap_calls"] + held_calls["cheap_calls"]))
        if len(success) >= 2 and success[-1].all() and success[-2].all():
            break
    return dict(
        grid=np.array(grid),
        success=np.array(success),
        gain=np.array(gain),
        cheap=np.array(cheap),
        oracle_gain=float(oracle_gain),
        A_target=A_target,
    )


def fit_slope(p, y):
    """Least-squares slope of log y against log p."""
    return float(np.polyfit(np.log(p), np.log(y), 1)[0])


def measure_rates(cfg, progress=True):
    """The two experiments of Theorem 1 over a geometric sweep of p."""
    ps = np.geomspace(cfg.p_min, cfg.p_max, cfg.n_p)
    rng = np.random.default_rng(cfg.run_key)
    rows, sweeps = [], {"rr": [], "caro": []}
    iterator = ps
    if progress:
        from tqdm import tqdm

        iterator = tqdm(ps, desc="coverage p", leave=False)
    for p_dial in iterator:
        mdp, pi = fork_mdp(
            p_dial, cfg.horizon, cfg.actions, cfg.tau, cfg.routine, cfg.run_key, trap=cfg.family == "trap"
        )
        _, _, A = evaluate(mdp, pi)
        d = state_distributions(mdp, pi)
        G = improvable_set(A, cfg.tau)
        p = coverage(d, G)
        row = dict(p=p)
        for method in ("rr", "caro"):
            s = sweep_n(mdp, pi, G, method, cfg, rng)
            sweeps[method].append(s)
            k = int(np.flatnonzero(s["success"].mean(1) >= 1 - cfg.delta)[0])
            gains = s["gain"][k]  # (trials,) improvement at the method's own n*
            A_pi_plus = policy_advantage(d, A, greedy_policy(A)) if method == "rr" else None
            bound = theorem1_bound(method, cfg.tau, p, cfg.horizon, A_pi_plus)
            row.update(
                {
                    f"{method}_n_star": float(s["grid"][k]),
                    f"{method}_gain": float(gains.mean()),
                    f"{method}_oracle_gain": s["oracle_gain"],
                    f"{method}_bound": float(bound),
                    f"{method}_bound_held": float((gains >= bound).mean()),
                    f"{method}_cheap_calls": float(s["cheap"][k]),
                    f"{method}_q_rollouts": float(s["grid"][k]),
                }
            )
        rows.append(row)
    return rows, sweeps


def bootstrap_slopes(rows, sweeps, cfg):
    """Slopes of n* and of the improvement against p, with percentile bootstrap CIs:
    resample the trials at each p independently and recompute n* and mean gains."""
    rng = np.random.default_rng(cfg.run_key + 1)
    p = np.array([row["p"] for row in rows])
    slopes, cis = {}, {}
    for method in ("rr", "caro"):
        n_star = np.array([row[f"{method}_n_star"] for row in rows])
        gain = np.array([row[f"{method}_gain"] for row in rows])
        slopes[f"{method}_samples"] = fit_slope(p, n_star)
        slopes[f"{method}_improvement"] = fit_slope(p, gain)
        boot_n, boot_g = [], []
        for _ in range(cfg.bootstrap):
            ns, gs = [], []
            for s in sweeps[method]:
                idx = rng.integers(0, cfg.trials, cfg.trials)
                rate = s["success"][:, idx].mean(1)  # (N,)
                k = np.flatnonzero(rate >= 1 - cfg.delta)
                k = k[0] if len(k) else len(rate) - 1
                ns.append(s["grid"][k])
                gs.append(s["gain"][k, idx].mean())
            boot_n.append(fit_slope(p, np.array(ns, float)))
            boot_g.append(fit_slope(p, np.maximum(np.array(gs), 1e-300)))
        cis[f"{method}_samples"] = np.percentile(boot_n, [2.5, 97.5]).tolist()
        cis[f"{method}_improvement"] = np.percentile(boot_g, [2.5, 97.5]).tolist()
    return slopes, cis


THEORY = {"rr_samples": -2.0, "caro_samples": 0.0, "rr_improvement": 2.0, "caro_improvement": 1.0}


# -----------------------------------------------------------------------------
# Output: table, JSON, figure


def print_table(rows, slopes, cis):
    head = (
        f"{'p':>7} | {'RR n*':>10} {'RR dJ':>9} {'>=bound':>7} | "
        f"{'CARO n*':>8} {'CARO dJ':>9} {'>=bound':>7} {'cheap/Q':>8}"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        print(
            f"{row['p']:7.4f} | {row['rr_n_star']:10.0f} {row['rr_gain']:9.2e} {row['rr_bound_held']:7.0%} | "
            f"{row['caro_n_star']:8.0f} {row['caro_gain']:9.2e} {row['caro_bound_held']:7.0%} "
            f"{row['caro_cheap_calls'] / row['caro_q_rollouts']:8.1f}"
        )
    print()
    print(f"{'log-log slope vs p':<24} {'measured':>9} {'95% CI':>17} {'theory':>7}  within 0.4")
    for key, theory in THEORY.items():
        lo, hi = cis[key]
        ok = "yes" if abs(slopes[key] - theory) <= 0.4 else "NO"
        print(f"{key:<24} {slopes[key]:9.2f} [{lo:6.2f}, {hi:6.2f}] {theory:7.1f}  {ok}")


def plot_rates(rows, slopes, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = np.array([row["p"] for row in rows])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    panels = [
        ("improvement", "gain", "per-iteration improvement J(pi_a) - J(pi)"),
        ("samples", "n_star", "sample complexity n* (Q-rollouts)"),
    ]
    for ax, (what, key, label) in zip(axes, panels):
        for method, color, name in (("rr", "tab:red", "CPI-RR"), ("caro", "tab:blue", "CPI-CARO")):
            y = np.array([row[f"{method}_{key}"] for row in rows])
            slope = slopes[f"{method}_{what}"]
            theory = THEORY[f"{method}_{what}"]
            anchor = np.exp(np.mean(np.log(y)) - slope * np.mean(np.log(p)))
            ax.loglog(p, y, "o", color=color, label=f"{name} measured")
            ax.loglog(p, anchor * p**slope, "-", color=color, label=f"fit, slope {slope:.2f}")
            mid = np.exp(np.mean(np.log(y)) - theory * np.mean(np.log(p)))
            ax.loglog(p, mid * p**theory, ":", color=color, label=f"theory, slope {theory:+.0f}")
            if what == "improvement":  # Theorem 1's guaranteed improvement
                bound = [row[f"{method}_bound"] for row in rows]
                ax.loglog(p, bound, "--", color=color, alpha=0.5, label=f"{name} Thm. 1 lower bound")
        ax.set_xlabel("coverage p of the improvable set")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_title("(a) improvement per CPI iteration")
    axes[1].set_title("(b) samples to reach half the oracle's improvement")
    fig.suptitle("Theorem 1: CPI with random resets vs a credit-assignment oracle")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    cfg = parse_config(argv)
    print("config:", json.dumps(dataclasses.asdict(cfg)))
    start = time.time()
    rows, sweeps = measure_rates(cfg)
    slopes, cis = bootstrap_slopes(rows, sweeps, cfg)
    print_table(rows, slopes, cis)
    os.makedirs(cfg.out, exist_ok=True)
    result = dict(
        config=dataclasses.asdict(cfg),
        slopes=slopes,
        slope_ci95=cis,
        theory=THEORY,
        within_0_4={k: abs(slopes[k] - THEORY[k]) <= 0.4 for k in THEORY},
        rows=rows,
        seconds=time.time() - start,
    )
    with open(os.path.join(cfg.out, "cpi_rates.json"), "w") as f:
        json.dump(result, f, indent=2)
    plot_rates(rows, slopes, os.path.join(cfg.out, "cpi_rates.png"))
    print(f"\nwrote {cfg.out}/cpi_rates.json and {cfg.out}/cpi_rates.png in {time.time() - start:.1f} s")
    worst = max(abs(slopes[k] - THEORY[k]) for k in THEORY)
    print(f"summary: largest slope error vs theory {worst:.2f} (tolerance 0.4)")
    return result


if __name__ == "__main__":
    main()
