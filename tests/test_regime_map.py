"""Tests for regime_map.py: the tabular chains start where they say, the update is the
gradient of the paper's loss (checked against autograd), the buffers keep the seed's
prefix, and the map runs and writes its table and figure."""

import math

import numpy as np
import pytest
import torch

import regime_map as rm


@pytest.mark.parametrize("m,a", [(1, 0.1), (4, 0.42), (8, 0.6)])
def test_a_chain_starts_at_its_pass_rate(m, a):
    chain = rm.Chain(8, m, a)
    assert rm.pass_rate(chain.start_logits()) == pytest.approx(chain.p0())
    assert chain.p0() == pytest.approx(a**m * 0.99 ** (8 - m))
    assert len(chain.uncertain_steps()) == m and chain.uncertain_steps()[-1] == 7


def test_the_update_is_the_gradient_of_the_papers_loss():
    """accumulate() against torch autograd of sum_i w_i sum_{own h} log softmax(theta_h)[y_ih]."""
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(5, rm.ACTIONS))
    actions = rng.integers(0, rm.ACTIONS, size=(6, 5))
    weights = rng.normal(size=6)
    own = (rng.random((6, 5)) > 0.3).astype(float)
    grad = np.zeros_like(theta)
    rm.accumulate(grad, rm.softmax(theta), actions, weights, own)
    t = torch.tensor(theta, requires_grad=True)
    logp = torch.log_softmax(t, -1)[torch.arange(5), torch.tensor(actions)]  # (6, 5)
    (torch.tensor(weights)[:, None] * torch.tensor(own) * logp).sum().backward()
    assert np.allclose(grad, t.grad.numpy())


def test_suffixes_keep_the_seeds_prefix_and_count_their_own_steps(monkeypatch):
    kept = []
    original = rm.accumulate

    def spy(grad, pi, actions, weights, own):
        kept.append((actions.copy(), own.copy()))
        original(grad, pi, actions, weights, own)

    monkeypatch.setattr(rm, "accumulate", spy)
    theta = rm.Chain(8, 4, 0.4).start_logits()
    _, tokens = rm.reset_step(theta, 1, np.random.default_rng(3), "oracle", constant=False)
    actions, own = kept[0]
    assert not own[4:].all(), "at p0 = 0.025 the search finds a seed (key 3 does)"
    suffix, suffix_own = actions[4:], own[4:]
    h = int(np.argmax(suffix_own[0])) + 1  # h*: the suffixes' first own step
    assert (suffix[:, : h - 1] == 0).all()  # the oracle's prefix holds only right steps
    assert (suffix_own[:, h - 1 :] == 1).all() and (suffix_own[:, : h - 1] == 0).all()
    assert own[:4].all() and tokens >= 5 * 8 + 4 * (8 - h + 1)


def test_every_method_reaches_an_easy_threshold_the_same_way_twice():
    chain = rm.Chain(8, 1, 0.5)
    for method in rm.METHODS:
        first = rm.run(method, chain, key=1, threshold=0.6)
        assert not math.isinf(first) and first == rm.run(method, chain, key=1, threshold=0.6)


def test_the_quick_map_writes_its_table_and_figure(tmp_path):
    rows = rm.main(["--quick", "--out", str(tmp_path)])
    assert len(rows) == 9 and all(set(rm.METHODS) <= set(r) for r in rows)
    table = (tmp_path / "regime_map.md").read_text()
    assert table.count("\n") == 11 and (tmp_path / "regime_map.png").stat().st_size > 1000


def test_many_grpo_batches_point_along_the_exact_policy_gradient():
    """mechanism.py's reference direction is the mean of many GRPO buffers' gradients; on a
    tabular chain, whose exact gradient is known, that mean points along it."""
    theta = rm.Chain(8, 4, 0.5).start_logits()
    rng = np.random.default_rng(0)
    mean = sum(rm.grpo_step(theta, 64, rng)[0] for _ in range(200))
    exact = rm.exact_gradient(theta)
    cosine = (mean * exact).sum() / np.linalg.norm(mean) / np.linalg.norm(exact)
    assert cosine > 0.98
    singles = [rm.grpo_step(theta, 4, np.random.default_rng(k))[0] for k in range(20)]  # one batch each
    noisy = [(g * exact).sum() / np.linalg.norm(g) / np.linalg.norm(exact) for g in singles if g.any()]
    assert (
        noisy and np.mean(noisy) < cosine - 0.02
    )  # one small batch is a noisier direction: the check can fail
