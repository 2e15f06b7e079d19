"""rrpo.py: Random-Reset Policy Optimization (Sec. 4.2, Algorithm 2 with a random h*).

What RRPO adds to grpo.py is only the rollout buffer: a base group from x_0 and
a shared-prefix group resampled from a reset state x* of a failed rollout.
Advantages, the loss (with the prefix of x* masked) and the training loop are
grpo.py's. RRPO realises CPI-RR at the thought level: the reset index is
uniform over the failed seed's thoughts.

Paper map (Algorithm 2)
  lines 1-3   seed search: iid rollouts from x_0 until the first incorrect one
              (the seed, excluded from the base group); the base group is the
              other rollouts of that stream, filled to its size            seed_search()
  line 4      h* ~ Unif{1, ..., H_s}, one ResetIndex record per seed        random_indices()
  line 6      x* = (x_0, y~_{1:h*-1})                                        thought_mdp.reset_state()
  line 7      G iid rollouts from x* -> group 2                             reset_buffer()
  lines 8-11  per-group advantages, the loss with the prefix masked          grpo.py (Group, pg_loss)
  Sec. 5.1    budget splits: 1x4 (4 base + 4 suffixes from one seed), 2x4 (two
              seeds, 4 suffixes each, no base group), 1x8 (8 suffixes)     split_sizes()
  Sec. 4.2    "if sampling exhausts without an incorrect rollout ... falls back to
              standard GRPO on the base group"                              the fallback in reset_buffer()

Symbols (G rollouts per prompt; S seeds and K suffixes per seed in a split "SxK")
  x_0               -> thought_mdp.State of the prompt; its rollouts form the stream of lines 1-3
  seed, H_s         -> a failed Rollout of the stream; len(seed.thought_ids)
  h*                -> ResetIndex.h, 1-based in 1..H_s
  x*                -> thought_mdp.reset_state(seed, h*)
  G, S, K, base     -> cfg.group_size; split_sizes(cfg.split, G) = (G - S*K, S, K)

Choices, and why
  * The seed search samples the stream in rounds for all prompts at once: the
    first round draws base size + number of seeds rollouts per prompt (which
    settles almost every prompt), later rounds draw more only for prompts still
    short of seeds, up to `--seed-budget` rollouts per prompt. Taking the
    first incorrect rollouts of the stream as seeds and the first others as the
    base group is exactly the sequential procedure of lines 1-3.
  * Fallback (too few incorrect rollouts within the budget): the step trains on
    a plain GRPO group for that prompt, the first `base` rollouts of the stream
    (G when the split has no base group); counted as `reset/grpo_fallbacks`.
  * Tokens: `tokens/base` counts every rollout sampled from x_0 (seeds and
    discarded search rollouts included); `tokens/suffix` only the suffixes' own
    tokens, since the shared prefix is never regenerated.
  * The splits are named for the paper's G = 8; with another --group-size the
    seeds and suffixes stay as named and the base group takes the rest (1x4 at
    G = 16: 12 base + 4 suffixes). A split that needs more than G rollouts is
    refused at start.
  * `--base-group iid` (a control, not the paper's method): the first `base`
    rollouts of the stream are the base group, seeds included, and the seeds
    are the first failures among them (none: the GRPO fallback). The paper's
    base group leaves its seeds out, so at a per-rollout pass rate q its G
    rollouts are all correct with probability (1 + G(1 - q)) q^G instead of
    q^G, and carry no signal more often; iid measures what that costs.
  * A reset rule `choose_index(seeds, cfg, step)` returns one ResetIndex per
    seed (h*, whether a localizer's answer parsed, its tokens, a reference
    step); rules that need no model (random, the classroom world's oracle)
    take no engine.

Run it
  python rrpo.py --demo                      # CPU: the classroom world (tiny_world.py), a few minutes
  python rrpo.py --demo smollm2-135m         # CPU: bundled SmolLM2 (smoke run)
  python rrpo.py --demo --split 2x4
  python rrpo.py --model allenai/OLMo-3-7B-Instruct
"""

import random
import time
from dataclasses import dataclass

import numpy as np

import grpo
import thought_mdp as tm



@dataclass
class ResetIndex:
    """How h* was chosen for one seed (Alg. 2, lines 4-5)."""
    h: int  # h*, 1-based in 1..H_s
    parsed: bool = None  # a localizer's answer held a valid step (False: uniform fallback); None: no localizer
    n_tokens: int = 0  # tokens the localizer generated (App. H)
    h_ref: int = None  # a reference step for comparison only (a second localizer, or the true first error)


def split_sizes(split, G):
    """Sec. 5.1: "SxK" = S seeds with K suffixes each, the other G - S*K rollouts the
    base group. At G = 8: 1x4 = 4 base + 4 suffixes, 2x4 = 2 x 4 suffixes, 1x8 = 8 suffixes.
    Returns (base rollouts, seeds, suffixes per seed)."""
    n_seeds, n_suffix = (int(x) for x in split.split("x"))
    return G - n_seeds * n_suffix, n_seeds, n_suffix


def check_split(cfg):
    """The split's rollouts add up to G, and the seed budget covers a base group and its seeds."""
    n_base, n_seeds, n_suffix = split_sizes(cfg.split, cfg.group_size)
    if n_base < 0:
        return (f"--split {cfg.split} samples {n_seeds * n_suffix} suffixes per prompt, more than "
                f"--group-size {cfg.group_size}")
    if cfg.base_group == "iid" and n_base < n_seeds:
        return f"--base-group iid draws the seeds from the base group; --split {cfg.split} has {n_base} base rollouts"
    if cfg.seed_budget < n_base + n_seeds:
        return (f"--seed-budget {cfg.seed_budget} must cover the base group and the seeds of one prompt "
                f"({n_base} + {n_seeds} rollouts)")
    return None


def seed_search(engine, problems, n_base, n_seeds, cfg, step):
    """Alg. 2, lines 1-3 for every prompt. Returns per prompt (base, seeds, stream):
    the base group, the seeds (None when the budget ran out first), and every
    rollout sampled from x_0, in stream order."""
    assert cfg.seed_budget >= n_base + n_seeds, "the seed budget covers at least one base group and its seeds"
    states = [tm.initial_state(engine.tokenizer, p, cfg.thought) for p in problems]
    streams = [[] for _ in problems]
    need = list(range(len(problems)))  # prompts still short of seeds
    iid = cfg.base_group == "iid"  # the seeds come from the base group itself: one draw of `base`
    draw, rnd = n_base if iid else n_base + n_seeds, 0
    while need:
        draw = min(draw, cfg.seed_budget - len(streams[need[0]]))
        rollouts = tm.sample_rollouts(engine, [states[b] for b in need], draw, cfg.thought,
                                     grpo.step_seed(cfg, step, grpo.SEED_SEARCH, rnd))
        for k, b in enumerate(need):
            streams[b] += rollouts[k * draw:(k + 1) * draw]
        need = [b for b in need if sum(r.reward < 1 for r in streams[b]) < n_seeds
                and len(streams[b]) < cfg.seed_budget and not iid]
        draw, rnd = max(2, n_seeds), rnd + 1
    results = []
    for stream in streams:
        failed = [i for i, r in enumerate(stream) if r.reward < 1][:n_seeds]  # line 1: the first incorrect ones
        if len(failed) < n_seeds:  # budget exhausted: no reset for this prompt
            results.append((None, None, stream))
            continue
        others = stream if iid else [r for i, r in enumerate(stream) if i not in failed]  # line 2: seeds excluded
        results.append((others[:n_base], [stream[i] for i in failed], stream))  # line 3: filled to size
    return results


def random_indices(seeds, cfg, step):
    """Alg. 2, line 4: h* ~ Unif{1, ..., H_s} for each seed."""
    rng = random.Random(grpo.step_seed(cfg, step, grpo.RANDOM_RESET))
    return [ResetIndex(rng.randint(1, len(s.thought_ids))) for s in seeds]


def reset_buffer(engine, problems, cfg, step, choose_index=random_indices):
    """The two-group buffer of Alg. 2 for a batch of prompts; `choose_index(seeds,
    cfg, step)` picks h* for a list of seeds (random here, self-localized in srpo.py)."""
    n_base, n_seeds, n_suffix = split_sizes(cfg.split, cfg.group_size)
    start = time.perf_counter()
    searched = seed_search(engine, problems, n_base, n_seeds, cfg, step)
    t_search = time.perf_counter() - start
    groups, seeds, owners, fallbacks = [], [], [], 0
    for b, (base, prompt_seeds, stream) in enumerate(searched):
        if prompt_seeds is None:  # Sec. 4.2: fall back to GRPO on the base group
            fallbacks += 1
            groups.append(grpo.Group(b, "base", stream[:n_base or cfg.group_size]))
            continue
        if n_base:
            groups.append(grpo.Group(b, "base", base))
        seeds += prompt_seeds
        owners += [b] * len(prompt_seeds)
    start = time.perf_counter()
    chosen = choose_index(seeds, cfg, step) if seeds else []  # lines 4-5
    t_choose = time.perf_counter() - start
    start = time.perf_counter()
    states = [tm.reset_state(s, c.h) for s, c in zip(seeds, chosen)]  # line 6
    suffixes = tm.sample_rollouts(engine, states, n_suffix, cfg.thought, grpo.step_seed(cfg, step, grpo.SUFFIX)) if states else []
    t_suffix = time.perf_counter() - start
    for k, b in enumerate(owners):  # line 7: one shared-prefix group per seed
        groups.append(grpo.Group(b, "suffix", suffixes[k * n_suffix:(k + 1) * n_suffix]))
    indices, lengths = [c.h for c in chosen], [len(s.thought_ids) for s in seeds]
    records = [{"prompt": b, "h": c.h, "H_s": n, "h_ref": c.h_ref,
                "suffix_pass": float(np.mean([r.reward for r in suffixes[k * n_suffix:(k + 1) * n_suffix]]))}
               for k, (b, c, n) in enumerate(zip(owners, chosen, lengths))]
    stats = {
        "tokens/base": sum(len(r.response_ids) for _, _, stream in searched for r in stream),
        "tokens/suffix": sum(r.n_own_tokens for r in suffixes),
        "tokens/localize": sum(c.n_tokens for c in chosen),
        "time/gen_s": t_search + t_suffix,
        "time/localize_s": t_choose,
        "reset/suffix_pass_rate": float(np.mean([r.reward for r in suffixes])) if suffixes else float("nan"),
        "reset/indices": indices,
        "reset/seed_lengths": lengths,
        "reset/relative_index": float(np.mean([h / n for h, n in zip(indices, lengths)])) if seeds else float("nan"),
        "reset/grpo_fallbacks": fallbacks,
        "reset/search_rollouts": sum(len(stream) for _, _, stream in searched),
        "reset/records": records,  # per seed: h*, H_s, a reference step if any, suffix pass rate
        "rollouts/generated": sum(len(stream) for _, _, stream in searched) + len(suffixes),
    }
    if any(c.parsed is not None for c in chosen):  # a localizer chose h*: its parse failures (srpo.py)
        failures = sum(c.parsed is False for c in chosen)
        stats.update({"localize/parse_failures": failures, "localize/fallback_rate": failures / len(chosen)})
    return groups, stats


def build_buffer(engine, problems, cfg, step):
    return reset_buffer(engine, problems, cfg, step, random_indices)


def main(argv=None):
    return grpo.main(argv, method="rrpo", buffer_fn=build_buffer, check=check_split)


if __name__ == "__main__":
    main()
