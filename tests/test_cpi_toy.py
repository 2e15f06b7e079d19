"""Tests for cpi_toy.py and tabular_mdp.py: known answers, equivalences, properties, and smoke runs."""

import itertools
import json

import numpy as np
import pytest

import cpi_toy as ct
import tabular_mdp as tmdp


def random_mdp(key, H=3, S=3, A=2):
    rng = np.random.default_rng(key)
    P = rng.dirichlet(np.ones(S), size=(H, S, A))  # (H, S, A, S)
    r = rng.uniform(0, 1, size=(H, S, A))
    mu = rng.dirichlet(np.ones(S))
    pi = rng.dirichlet(np.ones(A), size=(H, S))  # (H, S, A)
    return tmdp.MDP(P=P, r=r, mu=mu), pi


def hand_mdp():
    """H = 2, three states, two actions. From state 0, action 0 leads to state 1
    (reward 0), action 1 to state 2 (reward 0.5). At h = 2, state 1 pays [1, 0]
    and state 2 pays [0, 0.2]."""
    H, S, A = 2, 3, 2
    P = np.zeros((H, S, A, S))
    P[..., 0] = 1.0  # default: go to state 0
    P[0, 0, 0] = [0, 1, 0]
    P[0, 0, 1] = [0, 0, 1]
    r = np.zeros((H, S, A))
    r[0, 0] = [0.0, 0.5]
    r[1, 1] = [1.0, 0.0]
    r[1, 2] = [0.0, 0.2]
    pi = np.full((H, S, A), 0.5)
    pi[1, 1] = [0.8, 0.2]
    pi[1, 0] = [1.0, 0.0]
    return tmdp.MDP(P=P, r=r, mu=np.array([1.0, 0, 0])), pi


def test_policy_evaluation_by_hand():
    mdp, pi = hand_mdp()
    V, Q, A = tmdp.evaluate(mdp, pi)
    # V_2(1) = 0.8 * 1 = 0.8, V_2(2) = 0.5 * 0.2 = 0.1
    assert V[1, 1] == pytest.approx(0.8) and V[1, 2] == pytest.approx(0.1)
    # Q_1(0, .) = [0 + 0.8, 0.5 + 0.1], V_1(0) = 0.7
    assert Q[0, 0] == pytest.approx([0.8, 0.6])
    assert V[0, 0] == pytest.approx(0.7)
    assert tmdp.J(mdp, pi) == pytest.approx(0.7)
    assert A[0, 0] == pytest.approx([0.1, -0.1])
    assert A[1, 1] == pytest.approx([0.2, -0.8])
    d = tmdp.state_distributions(mdp, pi)
    assert d == pytest.approx(np.array([[1, 0, 0], [0, 0.5, 0.5]]))


def test_backward_induction_matches_enumeration():
    mdp, pi = random_mdp(0)
    H, S, A = mdp.H, mdp.S, mdp.A
    _, Q, _ = tmdp.evaluate(mdp, pi)
    d = tmdp.state_distributions(mdp, pi)

    def enumerate_from(h, x, y):
        """Expected return from (x, y) at time h, summing over every continuation."""
        total = 0.0
        rest = H - h - 1
        for xs in itertools.product(range(S), repeat=rest):
            for ys in itertools.product(range(A), repeat=rest):
                prob, ret, xp, yp = 1.0, mdp.r[h, x, y], x, y
                for t, (xn, yn) in enumerate(zip(xs, ys), start=h + 1):
                    prob *= mdp.P[t - 1, xp, yp, xn] * pi[t, xn, yn]
                    ret += mdp.r[t, xn, yn]
                    xp, yp = xn, yn
                total += prob * ret
        return total

    for h in range(H):
        for x in range(S):
            for y in range(A):
                assert Q[h, x, y] == pytest.approx(enumerate_from(h, x, y), abs=1e-12)
    J_enum = sum(mdp.mu[x] * pi[0, x, y] * enumerate_from(0, x, y) for x in range(S) for y in range(A))
    assert tmdp.J(mdp, pi) == pytest.approx(J_enum, abs=1e-12)
    # d^3 by enumeration of the first two steps
    d3 = np.zeros(S)
    for x1, y1, x2, y2, x3 in itertools.product(range(S), range(A), range(S), range(A), range(S)):
        d3[x3] += mdp.mu[x1] * pi[0, x1, y1] * mdp.P[0, x1, y1, x2] * pi[1, x2, y2] * mdp.P[1, x2, y2, x3]
    assert d[2] == pytest.approx(d3, abs=1e-12)


@pytest.mark.parametrize("key", range(5))
def test_policy_advantage_identity(key):
    """Lemma 2, Eq. (4): A(pi_G) = p * A^G(pi^+) >= tau * p."""
    mdp, pi = random_mdp(key)
    _, Q, A = tmdp.evaluate(mdp, pi)
    d = tmdp.state_distributions(mdp, pi)
    tau = float(np.median(A.max(-1)))  # improvable set: about half of the (h, x)
    G = tmdp.improvable_set(A, tau)
    p = tmdp.coverage(d, G)
    assert 0 < p < 1
    pi_plus = tmdp.greedy_policy(Q)
    pi_G = np.where(G[..., None], pi_plus, pi)
    A_G = (d * G * A.max(-1)).sum() / (d * G).sum()  # E[A(x, pi^+) | x in G]
    assert tmdp.policy_advantage(d, A, pi_G) == pytest.approx(p * A_G, rel=1e-10)
    assert p * A_G >= tau * p - 1e-12


def test_fork_mdp_has_the_dialled_coverage():
    for p in (0.01, 0.2, 0.7):
        mdp, pi = tmdp.fork_mdp(p, horizon=4, actions=3, tau=0.3, routine=3, key=5)
        _, _, A = tmdp.evaluate(mdp, pi)
        G = tmdp.improvable_set(A, 0.3)
        assert G[:, 0].all() and not G[:, 1:].any(), "only the fork is improvable"
        assert tmdp.coverage(tmdp.state_distributions(mdp, pi), G) == pytest.approx(p)


def test_mixtures_stay_on_the_simplex():
    rng = np.random.default_rng(1)
    for _ in range(20):
        pi = rng.dirichlet(np.ones(4), size=(3, 5))
        pi_plus = tmdp.greedy_policy(rng.normal(size=(3, 5, 4)))
        G = rng.random((3, 5)) < 0.5
        for alpha in (0.0, 0.3, 1.0, rng.random(7)):
            for mixed in (ct.mixture(pi, pi_plus, alpha), ct.mixture(pi, pi_plus, alpha, G)):
                assert (mixed >= 0).all()
                assert mixed.sum(-1) == pytest.approx(np.ones(mixed.shape[:-1]))
        off_G = ct.mixture(pi, pi_plus, 0.7, G)[~G]
        assert off_G == pytest.approx(pi[~G]), "CPI-CARO leaves pi unchanged off G"
    with pytest.raises(AssertionError):
        ct.mixture(pi, pi_plus, 1.5)


def test_rejection_sampler_accepts_only_improvable_states_at_rate_p():
    p, n = 0.1, 4000
    mdp, pi = tmdp.fork_mdp(p, horizon=3, actions=3, tau=0.3, routine=3, key=0)
    _, _, A = tmdp.evaluate(mdp, pi)
    G = tmdp.improvable_set(A, 0.3)
    x, h, cheap_calls = ct.credit_sampler(mdp, pi, G, n, np.random.default_rng(0))
    assert len(x) == n and G[h, x].all()
    # n acceptances take n / p trials on average; sd of the count is sqrt(n (1-p)) / p
    assert abs(cheap_calls - n / p) < 4 * np.sqrt(n * (1 - p)) / p
    # on a random MDP the accepted (x, h) follow d_pi^h restricted to G
    mdp, pi = random_mdp(3)
    _, _, A = tmdp.evaluate(mdp, pi)
    d = tmdp.state_distributions(mdp, pi)
    G = tmdp.improvable_set(A, float(np.median(A.max(-1))))
    x, h, _ = ct.credit_sampler(mdp, pi, G, 20000, np.random.default_rng(1))
    assert G[h, x].all()
    freq = np.zeros_like(d)
    np.add.at(freq, (h, x), 1 / len(x))
    assert freq == pytest.approx(d * G / (d * G).sum(), abs=0.015)


def test_q_rollout_is_unbiased():
    mdp, pi = random_mdp(2)
    _, Q, _ = tmdp.evaluate(mdp, pi)
    rng = np.random.default_rng(0)
    m = 40000
    for h, x, y in [(0, 1, 0), (1, 2, 1), (2, 0, 1)]:
        q = ct.q_rollout(mdp, pi, np.full(m, x), np.full(m, y), np.full(m, h), rng)
        assert q.mean() == pytest.approx(Q[h, x, y], abs=4 * q.std() / np.sqrt(m))


def test_return_distribution_has_mean_Q():
    mdp, pi = random_mdp(4)
    _, Q, _ = tmdp.evaluate(mdp, pi)
    law = tmdp.return_distribution(mdp, pi)
    assert law.sum(-1) == pytest.approx(np.ones(Q.shape))
    assert law @ np.arange(mdp.H + 1.0) == pytest.approx(Q)


@pytest.mark.parametrize("with_oracle", [False, True])
def test_fast_statistics_match_per_sample_phase_1(with_oracle):
    """q_sampling_stats draws (count, total) from the law of cell_statistics(q_sampling)."""
    mdp, pi = tmdp.fork_mdp(0.3, horizon=2, actions=2, tau=0.3, routine=2, key=0)
    _, _, A = tmdp.evaluate(mdp, pi)
    G = tmdp.improvable_set(A, 0.3) if with_oracle else None
    n, runs = 200, 400
    rng = np.random.default_rng(0)
    slow = [ct.cell_statistics(mdp, ct.q_sampling(mdp, pi, n, rng, G)[0]) for _ in range(runs)]
    slow_count = np.array([c for c, _ in slow])
    slow_total = np.array([t for _, t in slow])
    fast_count, fast_total, _ = ct.q_sampling_stats(mdp, pi, n, rng, 20000, G)
    for slow_x, fast_x in ((slow_count, fast_count), (slow_total, fast_total)):
        se = np.sqrt(fast_x.var(0) / runs + fast_x.var(0) / 20000) + 1e-9
        assert np.all(np.abs(slow_x.mean(0) - fast_x.mean(0)) < 5 * se)
        ratio = (slow_x.std(0) + 1e-9) / (fast_x.std(0) + 1e-9)
        assert np.all((ratio > 0.8) & (ratio < 1.25))


def test_greedy_keeps_pi_where_nothing_was_seen():
    pi = np.full((1, 2, 3), 1 / 3)
    count = np.array([[[0, 2, 1], [0, 0, 0]]], float)
    total = np.array([[[0, 1.0, 0.9], [0, 0, 0]]])
    Q_hat = ct.fit_q(count, total)
    assert np.isnan(Q_hat[0, 0, 0]) and Q_hat[0, 0, 2] == pytest.approx(0.9)
    pi_plus = ct.greedy(Q_hat, pi)
    assert pi_plus[0, 0] == pytest.approx([0, 0, 1])  # 0.9 > 0.5
    assert pi_plus[0, 1] == pytest.approx(pi[0, 1])


def test_step_size_is_clipped_to_the_unit_interval():
    A_hat = np.array([-1.0, 0.0, 0.9, 100.0])
    assert ct.step_size(A_hat, 3, "rr") == pytest.approx([0, 0, 0.1, 1])
    assert ct.step_size(A_hat, 3, "caro") == pytest.approx([0, 0, 0.05, 1])


@pytest.mark.parametrize("key", range(10))
def test_cpi_lower_bounds_hold_for_small_steps(key):
    """Eq. (1) for pi' = pi^+, and the credit-aware Eq. (2) for pi' = pi_G."""
    mdp, pi = random_mdp(key, H=4, S=4, A=3)
    H = mdp.H
    _, Q, A = tmdp.evaluate(mdp, pi)
    d = tmdp.state_distributions(mdp, pi)
    pi_plus = tmdp.greedy_policy(Q)
    G = tmdp.improvable_set(A, float(np.median(A.max(-1))))
    p = tmdp.coverage(d, G)
    A_plus = tmdp.policy_advantage(d, A, pi_plus)
    A_G = (d * G * A.max(-1)).sum() / (d * G).sum()
    for alpha in (0.001, 0.01, 0.05, 0.1):
        gain = tmdp.J(mdp, ct.mixture(pi, pi_plus, alpha)) - tmdp.J(mdp, pi)
        assert gain >= alpha * H * A_plus - 0.5 * alpha**2 * H**3 * tmdp.R_MAX - 1e-12
        gain_G = tmdp.J(mdp, ct.mixture(pi, pi_plus, alpha, G)) - tmdp.J(mdp, pi)
        assert gain_G >= alpha * H * p * A_G - alpha**2 * H**3 * tmdp.R_MAX * p - 1e-12


def test_oracle_update_matches_theorem_1_in_the_fork_family():
    """Exact A-hat gives alpha = tau p / H^2 (RR) and tau / (2 H^2) (CARO), so
    J gains tau^2 p^2 / H and tau^2 p / (2 H): the rates of Table 1."""
    tau, H, p = 0.3, 3, 0.05
    mdp, pi = tmdp.fork_mdp(p, horizon=H, actions=3, tau=tau, routine=3, key=0)
    _, _, A = tmdp.evaluate(mdp, pi)
    G = tmdp.improvable_set(A, tau)
    gain_rr, A_rr = ct.oracle_update(mdp, pi, "rr", G)
    gain_caro, A_caro = ct.oracle_update(mdp, pi, "caro", G)
    assert A_rr == pytest.approx(tau * p) and A_caro == pytest.approx(tau)
    assert gain_rr == pytest.approx(tau**2 * p**2 / H)
    assert gain_caro == pytest.approx(tau**2 * p / (2 * H))
    assert gain_rr >= ct.theorem1_bound("rr", tau, p, H, A_rr)
    assert gain_caro >= ct.theorem1_bound("caro", tau, p, H)


def test_quick_run_writes_results_with_theory_slopes(tmp_path):
    # speed is measured in docs/theory.md, not asserted here
    result = ct.main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "cpi_rates.json").read_text())
    assert (tmp_path / "cpi_rates.png").stat().st_size > 10_000
    assert set(ct.THEORY) <= set(saved["slopes"])
    for key, theory in ct.THEORY.items():
        assert abs(saved["slopes"][key] - theory) <= 0.5, (key, saved["slopes"][key])
    assert len(saved["rows"]) == 6 and result["slopes"] == saved["slopes"]
    # CPI-CARO pays about 1/p cheap oracle calls per Q-rollout (App. B)
    for row in saved["rows"]:
        assert row["caro_cheap_calls"] / row["caro_q_rollouts"] == pytest.approx(1 / row["p"], rel=0.1)


def test_tabular_mdp_script_reports_the_dialled_coverage():
    assert tmdp.main(["--p", "0.2", "--horizon", "2"]) == pytest.approx(0.2)


def test_trap_family_moves_the_state_distribution_with_the_policy(tmp_path):
    """In the trap family a worse action at the fork leads to an absorbing state that
    pays 0; the base policy never goes there, so the dialled coverage is unchanged."""
    p = 0.2
    mdp, pi = tmdp.fork_mdp(p, horizon=4, actions=3, tau=0.3, routine=3, key=5, trap=True)
    plain, _ = tmdp.fork_mdp(p, horizon=4, actions=3, tau=0.3, routine=3, key=5)
    assert mdp.S == plain.S + 1 and np.allclose(mdp.P.sum(-1), 1.0) and (mdp.r[:, -1] == 0).all()
    d = tmdp.state_distributions(mdp, pi)
    G = tmdp.improvable_set(tmdp.evaluate(mdp, pi)[2], 0.3)
    assert tmdp.coverage(d, G) == pytest.approx(p) and d[:, -1].sum() == 0
    worse = np.argmin(plain.r[:, 0], axis=-1)  # (H,) the fork's worst action: neither 0 nor y*_h
    bad = pi.copy()
    bad[np.arange(4), 0] = np.eye(3)[worse]  # play it at the fork
    d_bad = tmdp.state_distributions(mdp, bad)
    assert d_bad[1:, -1] == pytest.approx(1 - (1 - p) ** np.arange(1, 4))  # the trap fills up
    assert tmdp.state_distributions(plain, bad[:, :-1]) == pytest.approx(
        tmdp.state_distributions(plain, pi[:, :-1])
    )
    result = ct.main(["--quick", "--family", "trap", "--out", str(tmp_path)])
    for key, theory in ct.THEORY.items():
        assert abs(result["slopes"][key] - theory) <= 0.5, (key, result["slopes"][key])
