"""tabular_mdp.py: finite-horizon tabular MDPs evaluated exactly (Sec. 2-3.1, App. A.3),
the ground on which cpi_toy.py runs Algorithm 1.

Paper map
  Sec. 2          MDP (X, Y, P, r, H, mu); V, Q, A by backward induction;
                  d_pi^h; J(pi); the policy advantage A_{pi,mu}(pi')   evaluate(), state_distributions(), J()
  Sec. 3.1        G_{h,tau}, coverage p_pi, oracle O(x, h)             improvable_set(), coverage()
  App. A.3        the H = 1 tightness construction, generalised to
                  H steps (the MDP family of the experiments; trap=True:
                  a worse action at the fork absorbs)                   fork_mdp()
  (Alg. 1 l.1-6)  the exact law of a Q-rollout's 0/1 return, for
                  cpi_toy.py's fast Phase 1                            return_distribution()

Symbols (S states, A actions, H horizon; ... = leading trial axes)
  P_h(x'|x,y)        -> mdp.P     (H, S, A, S)
  r_h(x,y)           -> mdp.r     (H, S, A)  mean reward in [0, R_max]
  mu                 -> mdp.mu    (S,)
  pi_h(y|x)          -> pi        (..., H, S, A) rows on the simplex
  V_h, Q_h, A_h      -> V (..., H+1, S), Q (..., H, S, A), A (..., H, S, A)
  d_pi^h(x)          -> d         (..., H, S)
  G_{h,tau}          -> G         (H, S) bool
  p_pi               -> coverage(d, G), time-averaged

Deviations from the paper, and why
  * Rewards are means in [0, 1] (R_max = 1); cpi_toy.py observes them as
    Bernoulli 0/1 outcomes, as in RLVR. Theorem 1 only needs bounded rewards.
  * Improvable states are exactly those with max_y A >= tau - 1e-9; the
    tolerance only absorbs floating-point error in A = Q - V.

Run it
  python tabular_mdp.py                  # one fork MDP: V, its coverage p and the improvable set
  python tabular_mdp.py --p 0.1 --horizon 4
"""

import argparse
from dataclasses import dataclass

import numpy as np

R_MAX = 1.0
ORACLE_TOL = 1e-9  # floating-point slack of the membership test O(x, h)


# -----------------------------------------------------------------------------
# Sec. 2: finite-horizon tabular MDPs, exact policy evaluation


@dataclass
class MDP:
    P: np.ndarray  # (H, S, A, S)  P_h(x' | x, y)
    r: np.ndarray  # (H, S, A)     mean reward in [0, R_max]
    mu: np.ndarray  # (S,)         initial state distribution

    @property
    def H(self):
        return self.r.shape[0]

    @property
    def S(self):
        return self.r.shape[1]

    @property
    def A(self):
        return self.r.shape[2]


def evaluate(mdp, pi):
    """V, Q, A of pi by backward induction (Sec. 2); pi may carry leading trial axes."""
    batch = pi.shape[:-3]
    V = np.zeros(batch + (mdp.H + 1, mdp.S))  # (..., H+1, S), V_{H+1} = 0
    Q = np.zeros(batch + (mdp.H, mdp.S, mdp.A))  # (..., H, S, A)
    for h in reversed(range(mdp.H)):
        Q[..., h, :, :] = mdp.r[h] + np.einsum("xaz,...z->...xa", mdp.P[h], V[..., h + 1, :])
        V[..., h, :] = (pi[..., h, :, :] * Q[..., h, :, :]).sum(-1)
    A = Q - V[..., :-1, :, None]  # (..., H, S, A)
    return V, Q, A


def state_distributions(mdp, pi):
    """d_pi^h(x) = P_pi(x_h = x | x_1 ~ mu), for h = 1..H; shape (..., H, S)."""
    batch = pi.shape[:-3]
    d = np.zeros(batch + (mdp.H, mdp.S))
    d[..., 0, :] = mdp.mu
    for h in range(mdp.H - 1):
        d[..., h + 1, :] = np.einsum("...x,...xa,xaz->...z", d[..., h, :], pi[..., h, :, :], mdp.P[h])
    return d


def J(mdp, pi):
    """Expected return J(pi) = E_{x_1 ~ mu} V_1(x_1); shape (...)."""
    V, _, _ = evaluate(mdp, pi)
    return V[..., 0, :] @ mdp.mu


def policy_advantage(d, A, pi_prime):
    """The policy advantage A_{pi,mu}(pi') = (1/H) sum_h E_{x~d^h} E_{y~pi'} A_h(x, y) (Sec. 2)."""
    return np.einsum("...hx,...hxa,...hxa->...", d, pi_prime, A) / d.shape[-2]


def greedy_policy(values):
    """One-hot rows at the argmax over the last axis (ties: the first action)."""
    return np.eye(values.shape[-1])[values.argmax(-1)]


# -----------------------------------------------------------------------------
# Sec. 3.1: the improvable set, its coverage, the oracle


def improvable_set(A, tau):
    """G_{h,tau} = {x : max_y A_h(x, y) >= tau}; shape (H, S) bool. O(x, h) = G[h, x]."""
    return A.max(-1) >= tau - ORACLE_TOL


def coverage(d, G):
    """p_pi = (1/H) sum_h P_{x ~ d^h}[x in G_{h,tau}]."""
    return float((d * G).sum(-1).mean(-1))


# -----------------------------------------------------------------------------
# App. A.3, generalised: a family of MDPs whose coverage p is a dial


def fork_mdp(p, horizon, actions, tau, routine, key, trap=False):
    """Every step the agent stands either at the fork (state 0, probability p) or
    at one of `routine` ordinary states. The base policy plays action 0 everywhere.
    At the fork one action y*_h (drawn by the key) is better by tau, the others
    worse than action 0; at a routine state every action pays the same (the
    paper's epsilon = 0: nothing to gain there, as for a reasoning step that made
    no error). Transitions do not depend on the action, so d_pi^h
    puts mass exactly p on the fork for every policy and every h: G_{h,tau} is
    {fork}, p_pi = p, and A^{G^c}(pi^+) = 0, the regime of Table 1.
    H = 1 with one routine state is the construction of App. A.3 (Figure 5) with
    epsilon = 0. Estimating Q at a routine state is pure noise for the greedy
    step (all actions tie), which is what makes CPI-RR pay 1/p^2. The key fixes
    everything but p, so a sweep over p changes only the coverage.

    trap=True makes the transitions depend on the action: a worse action at the
    fork (neither 0 nor y*_h) leads to an absorbing trap state (the last one)
    that pays 0 ever after. The base policy never goes there, so p is unchanged;
    a greedy step that picks a worse action from noisy estimates would lose every
    later reward, moving the state distribution with the policy (Lemma 3's
    alpha^2 term). Measured (docs/theory.md): the worse action's advantage sits so far
    below the better one's that the greedy step never confuses them, and
    Theorem 1's four slopes hold as in the plain family."""
    rng = np.random.default_rng(key)
    S, H, Y = routine + 1, horizon, actions
    # where the next state lands: fork w.p. p, else routine k w.p. (1-p) D[h, x, k]
    D = rng.dirichlet(np.ones(routine), size=(H, S))  # (H, S, K)
    P = np.zeros((H, S, Y, S))
    P[..., 0] = p
    P[..., 1:] = (1 - p) * D[:, :, None, :]
    mu = np.concatenate([[p], (1 - p) * rng.dirichlet(np.ones(routine))])
    # rewards: routine state k pays b_k whatever the action (A = 0 there)
    r = np.zeros((H, S, Y))
    r[:, 1:, :] = rng.uniform(0.35, 0.65, size=(H, routine, 1))  # b_k
    # the fork pays 1/2 for action 0, 1/2 + tau for y*_h, less for the rest
    r[:, 0, :] = 0.5 - rng.uniform(0.05, 0.25, size=(H, Y))
    r[:, 0, 0] = 0.5
    better = rng.integers(1, Y, size=H)  # y*_h
    r[np.arange(H), 0, better] = 0.5 + tau
    r = np.clip(r, 0.0, R_MAX)
    if trap:  # one more state: the trap, absorbing, paying 0
        worse = np.ones((H, Y), bool)
        worse[:, 0] = False
        worse[np.arange(H), better] = False
        P = np.pad(P, ((0, 0), (0, 1), (0, 0), (0, 1)))  # (H, S+1, A, S+1)
        P[:, 0][worse] = 0.0
        P[:, 0][worse, -1] = 1.0  # a worse action at the fork falls into the trap
        P[:, -1, :, -1] = 1.0
        r, mu, S = np.pad(r, ((0, 0), (0, 1), (0, 0))), np.append(mu, 0.0), S + 1
    pi = np.zeros((H, S, Y))
    pi[..., 0] = 1.0
    return MDP(P=P, r=r, mu=mu), pi


def return_distribution(mdp, pi):
    """law[h, x, y, k] = P(sum of 0/1 rewards from (x, y) at time h = k); (H, S, A, H+1)."""
    law = np.zeros((mdp.H, mdp.S, mdp.A, mdp.H + 1))
    nxt = np.zeros((mdp.S, mdp.H + 1))
    nxt[:, 0] = 1.0  # after the horizon the return is 0
    for h in reversed(range(mdp.H)):
        cont = np.einsum("xaz,zk->xak", mdp.P[h], nxt)  # law of the future return
        r = mdp.r[h][..., None]
        law[h] = (1 - r) * cont
        law[h, ..., 1:] += r * cont[..., :-1]  # this step paid 1
        nxt = np.einsum("xa,xak->xk", pi[h], law[h])
    return law / law.sum(-1, keepdims=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Evaluate one MDP of the fork family exactly")
    parser.add_argument(
        "--p", type=float, default=0.1, help="coverage: the probability of standing at the fork"
    )
    parser.add_argument("--horizon", type=int, default=3, help="H, steps per episode")
    parser.add_argument("--actions", type=int, default=3, help="|Y|, actions per state")
    parser.add_argument("--tau", type=float, default=0.3, help="the better fork action's advantage")
    parser.add_argument(
        "--run-key", "--seed", type=int, default=0, help="the random key (--seed: its old name, deprecated)"
    )
    args = parser.parse_args(argv)
    mdp, pi = fork_mdp(args.p, args.horizon, args.actions, args.tau, routine=3, key=args.run_key)
    V, Q, A = evaluate(mdp, pi)
    G = improvable_set(A, args.tau)
    p = coverage(state_distributions(mdp, pi), G)
    print(f"fork MDP: H = {mdp.H}, S = {mdp.S}, A = {mdp.A}; J(pi) = {J(mdp, pi):.4f}")
    print(
        f"improvable states per step (h, x): {[tuple(map(int, hx)) for hx in np.argwhere(G)]}; "
        f"coverage p = {p:.4f}"
    )
    print(f"max advantage per step: {np.round(A.max(-1).max(-1), 4).tolist()}")
    return p


if __name__ == "__main__":
    main()
