"""rrpo.py: Random-Reset Policy Optimization (Sec. 4.2, Algorithm 2 with a random h*).

What RRPO adds to grpo.py is only the rollout buffer: a base group from x_0 and
a shared-prefix group resampled from a reset state x* of a failed rollout.
Advantages, the loss (with the prefix of x* masked) and the training loop are
grpo.py's. RRPO realises CPI-RR at the thought level: the reset index is
uniform over the failed seed's thoughts.

Paper map (Algorithm 2)
  lines 1-3   seed search: iid rollouts from x_0 until the first incorrect one
              (the seed, excluded from the base group); the base group is the
              other rollouts of that stream, filled to its size            prompt_machine()
  line 4      h* ~ Unif{1, ..., H_s}, one ResetIndex record per seed        random_index()
  line 6      x* = (x_0, y~_{1:h*-1})                                        seed_machine(), thought_mdp.reset_state()
  line 7      G iid rollouts from x* -> group 2                             seed_machine(), reset_buffer()
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
  * Each prompt is a machine (pipeline.py): its stream is sampled in rounds,
    the first of base size + number of seeds rollouts (which settles almost
    every prompt), later ones only while it is short of seeds, up to
    `--seed-budget` rollouts. Taking the first incorrect rollouts of the stream
    as seeds and the first others as the base group is exactly the sequential
    procedure of lines 1-3. The seeds' machines (h*, x*, the suffix group)
    start as soon as the stream's finished prefix holds the seeds, while the
    rest of the base group is still sampling; `--schedule phases` runs the
    same machines phase by phase (same buffer, slower). Every stream row,
    seed and suffix group has its own sampling seed keyed by (step, phase,
    prompt, stream index or seed), so `--search-ahead A` (draw A more stream
    rows with the first round, drop the unneeded ones) changes the cost of a
    step, never its buffer.
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
  * A reset rule `rule(sched, seed, cfg, step, key)` returns the ResetIndex of
    one seed (h*, whether a localizer's answer parsed, its tokens, a reference
    step); a rule that asks a model (srpo.py) is itself a machine that waits
    for its answer, rules that need none (random, the classroom world's
    oracle) are plain functions.

Run it
  python rrpo.py --demo                      # CPU: the classroom world (tiny_world.py), a few minutes
  python rrpo.py --demo smollm2-135m         # CPU: bundled SmolLM2 (smoke run)
  python rrpo.py --demo --split 2x4
  python rrpo.py --demo --search-ahead 3     # speculative seed search: the same buffer, a shorter step
  python rrpo.py --model allenai/OLMo-3-7B-Instruct
"""

import random
import time
from dataclasses import dataclass

import numpy as np

import grpo
import pipeline
import thought_mdp as tm


@dataclass
class ResetIndex:
    """How h* was chosen for one seed (Alg. 2, lines 4-5)."""

    h: int  # h*, 1-based in 1..H_s
    parsed: bool = (
        None  # a localizer's answer held a valid step (False: uniform fallback); None: no localizer
    )
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
        return (
            f"--split {cfg.split} samples {n_seeds * n_suffix} suffixes per prompt, more than "
            f"--group-size {cfg.group_size}"
        )
    if cfg.base_group == "iid" and n_base < n_seeds:
        return f"--base-group iid draws the seeds from the base group; --split {cfg.split} has {n_base} base rollouts"
    if cfg.seed_budget < n_base + n_seeds:
        return (
            f"--seed-budget {cfg.seed_budget} must cover the base group and the seeds of one prompt "
            f"({n_base} + {n_seeds} rollouts)"
        )
    return None


def prompt_machine(sched, b, problem, cfg, step, sizes, rule=None):
    """Alg. 2 for prompt b as a machine of pipeline.py. Lines 1-3 here: the stream
    from x_0, in rounds, until it holds the seeds (the first failures in stream
    order). Lines 4-7 run in one seed_machine per seed, started the moment the
    stream's finished prefix holds all the seeds, while the rest of the stream (the
    base group) is still sampling. rule=None: the seed search alone. Returns
    (base, seeds, stream, seed tasks, tokens of dropped speculative rows); base and
    seeds None when the budget ran out. With --search-ahead A the first round also
    draws A more rows of the stream, so that a prompt whose first rows are all right
    need not wait for another round; once the seeds and the base group are known
    the rows left are dropped. The stream, hence the buffer, is the same."""
    n_base, n_seeds, n_suffix = sizes
    assert cfg.seed_budget >= n_base + n_seeds, "the seed budget covers at least one base group and its seeds"
    iid = cfg.base_group == "iid"  # the seeds come from the base group itself: one draw of `base`
    x0 = tm.initial_state(sched.engine.tokenizer, problem, cfg.thought)
    rounds, tasks, wasted = [], [], 0
    stream_seed = grpo.step_seed(
        cfg, step, grpo.SEED_SEARCH, b
    )  # row k of the stream: derive_seed(stream_seed, k)

    def draw(n):  # the next n rows of this prompt's stream
        rounds.append(
            sched.sample([x0], n, cfg.thought, stream_seed, "search", first=sum(len(r.rows) for r in rounds))
        )

    ahead = (
        0 if iid else min(cfg.search_ahead, cfg.seed_budget - n_base - n_seeds)
    )  # speculative rows, see below
    draw(n_base if iid else n_base + n_seeds + ahead)
    while True:
        known = []  # the stream's finished prefix, in stream order
        for request in rounds:
            part = request.finished()
            known += part
            if len(part) < len(request.rows):  # a row still sampling (or dropped): the prefix ends here
                break
        failed = [i for i, r in enumerate(known) if r.reward < 1][
            :n_seeds
        ]  # line 1: the first incorrect ones
        if (
            rule and not tasks and len(failed) == n_seeds
        ):  # lines 4-7 start now, beside the rest of the stream
            tasks = [
                sched.spawn(seed_machine(sched, b, j, known[i], cfg, step, rule, n_suffix))
                for j, i in enumerate(failed)
            ]
        needed = (
            max(failed[-1] + 1, n_base + n_seeds) if len(failed) == n_seeds else None
        )  # seeds + base group
        if (
            ahead and needed and needed <= len(known) and needed < len(rounds[0].rows)
        ):  # decided within round 1
            wasted += sched.cancel(rounds[0], range(needed, len(rounds[0].rows)))  # drop the rows past it
            known = known[:needed]
        if all(r.done for r in rounds):
            if len(failed) == n_seeds or iid or len(known) >= cfg.seed_budget:
                break
            draw(min(max(2, n_seeds), cfg.seed_budget - len(known)))  # short of seeds: search on
        yield
    stream = known
    if len(failed) < n_seeds:  # budget exhausted: no reset for this prompt
        return None, None, stream, [], wasted
    others = stream if iid else [r for i, r in enumerate(stream) if i not in failed]  # line 2: seeds excluded
    yield from pipeline.wait(*tasks)
    return others[:n_base], [stream[i] for i in failed], stream, tasks, wasted  # line 3: filled to size


def seed_machine(sched, b, j, seed, cfg, step, rule, n_suffix):
    """Alg. 2, lines 4-7 for seed j of prompt b: h* (the rule may ask an engine),
    x*, and the suffix group. Returns (ResetIndex, suffixes)."""
    chosen = yield from pipeline.result_of(rule(sched, seed, cfg, step, (b, j)))  # lines 4-5
    x_star = tm.reset_state(seed, chosen.h)  # line 6
    suffixes = sched.sample(
        [x_star], n_suffix, cfg.thought, grpo.step_seed(cfg, step, grpo.SUFFIX, b, j), "suffix"
    )
    yield from pipeline.wait(suffixes)  # line 7
    return chosen, suffixes.results


def seed_search(engine, problems, n_base, n_seeds, cfg, step):
    """Alg. 2, lines 1-3 alone for every prompt: per prompt (base, seeds, stream)."""
    sched = pipeline.Scheduler(engine, cfg.schedule)
    found = sched.run(
        [prompt_machine(sched, b, p, cfg, step, (n_base, n_seeds, 0)) for b, p in enumerate(problems)]
    )
    return [(base, seeds, stream) for base, seeds, stream, _, _ in found]


def random_index(sched, seed, cfg, step, key):
    """Alg. 2, line 4: h* ~ Unif{1, ..., H_s}, from the seed's own random stream (key = prompt, seed)."""
    return ResetIndex(
        random.Random(grpo.step_seed(cfg, step, grpo.RANDOM_RESET, *key)).randint(1, len(seed.thought_ids))
    )


def reset_buffer(engine, problems, cfg, step, rule=random_index):
    """The two-group buffer of Alg. 2 for a batch of prompts; `rule(sched, seed, cfg,
    step, key)` picks h* for one seed (random here, self-localized in srpo.py), and
    may be a machine that asks the engine (pipeline.py)."""
    sizes = n_base, n_seeds, n_suffix = split_sizes(cfg.split, cfg.group_size)
    sched = pipeline.Scheduler(engine, cfg.schedule)
    start = time.perf_counter()
    found = sched.run([prompt_machine(sched, b, p, cfg, step, sizes, rule) for b, p in enumerate(problems)])
    t_all = time.perf_counter() - start
    groups, seeds, owners, chosen, suffix_groups, fallbacks = [], [], [], [], [], 0
    for b, (base, prompt_seeds, stream, tasks, _) in enumerate(found):
        if prompt_seeds is None:  # Sec. 4.2: fall back to GRPO on the base group
            fallbacks += 1
            groups.append(grpo.Group(b, "base", stream[: n_base or cfg.group_size]))
            continue
        if n_base:
            groups.append(grpo.Group(b, "base", base))
        for s, task in zip(prompt_seeds, tasks):
            c, suffix = task.result
            seeds.append(s), owners.append(b), chosen.append(c)
            suffix_groups.append(grpo.Group(b, "suffix", suffix))  # line 7: one shared-prefix group per seed
    groups += suffix_groups
    suffixes = [r for g in suffix_groups for r in g.rollouts]
    indices, lengths = [c.h for c in chosen], [len(s.thought_ids) for s in seeds]
    records = [
        {
            "prompt": b,
            "h": c.h,
            "H_s": n,
            "h_ref": c.h_ref,
            "suffix_pass": float(np.mean([r.reward for r in g.rollouts])),
        }
        for b, c, n, g in zip(owners, chosen, lengths, suffix_groups)
    ]
    fill = sched.fill_metrics()
    t_localize = fill.get("time/phase/localize_s", 0.0)
    streams, wasted = [stream for _, _, stream, _, _ in found], sum(w for *_, w in found)
    stats = {
        "tokens/base": sum(len(r.response_ids) for stream in streams for r in stream) + wasted,
        "tokens/search_dropped": wasted,  # --search-ahead rows dropped part-way or finished past the decision
        "tokens/suffix": sum(r.n_own_tokens for r in suffixes),
        "tokens/localize": sum(c.n_tokens for c in chosen),
        "time/gen_s": t_all - t_localize,
        "time/localize_s": t_localize,
        **fill,
        "reset/suffix_pass_rate": float(np.mean([r.reward for r in suffixes])) if suffixes else float("nan"),
        "reset/indices": indices,
        "reset/seed_lengths": lengths,
        "reset/relative_index": float(np.mean([h / n for h, n in zip(indices, lengths)]))
        if seeds
        else float("nan"),
        "reset/grpo_fallbacks": fallbacks,
        "reset/search_rollouts": sum(len(stream) for stream in streams),
        "reset/records": records,  # per seed: h*, H_s, a reference step if any, suffix pass rate
        "rollouts/generated": sum(len(stream) for stream in streams) + len(suffixes),
    }
    if any(c.parsed is not None for c in chosen):  # a localizer chose h*: its parse failures (srpo.py)
        failures = sum(c.parsed is False for c in chosen)
        stats.update({"localize/parse_failures": failures, "localize/fallback_rate": failures / len(chosen)})
    return groups, stats


def build_buffer(engine, problems, cfg, step):
    return reset_buffer(engine, problems, cfg, step, random_index)


def main(argv=None):
    return grpo.main(argv, method="rrpo", buffer_fn=build_buffer, check=check_split)


if __name__ == "__main__":
    main()
