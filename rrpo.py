"""rrpo.py: Random-Reset Policy Optimization (Sec. 4.2, Algorithm 2 with a random h*).

What RRPO adds to grpo.py is only the rollout buffer: a base group from x_0 and
a shared-prefix group resampled from a reset state x* of a failed rollout (the
seed). Advantages, the loss (with the prefix of x* masked) and the training
loop are grpo.py's. RRPO realises CPI-RR at the thought level: the reset index
is uniform over the seed's thoughts.

Algorithm 2, lines 1-7, for one prompt x_0 (reset_prompt(), the reference):
  1  sample iid rollouts from x_0 until one is incorrect: the seed
  2  the other rollouts of that stream form the base group G1 (seed excluded)
  3  ... filled to its size
  4  h* ~ Unif{1, ..., H_s}                          (RRPO; SRPO: line 5)
  5  h* <- the policy's own localization of the seed's first error (srpo.py)
  6  x* = (x_0, y~_1, ..., y~_{h*-1})
  7  G2: K iid continuations from x*
Lines 8-11 (advantages per group, the masked loss) are grpo.py's.

Paper map
  Alg. 2, lines 1-7  the buffer of one prompt, line by line              reset_prompt()
  Alg. 2, line 4     h* ~ Unif{1, ..., H_s}                               random_index(), RANDOM
  Alg. 2, line 6     x* = (x_0, y~_{1:h*-1})                             thought_mdp.reset_state()
  Sec. 5.1           budget splits: 1x4 (4 base + 4 suffixes from one
                     seed), 2x4 (two seeds, 4 suffixes each, no base
                     group), 1x8 (8 suffixes)                             split_sizes()
  Sec. 4.2           "if sampling exhausts without an incorrect rollout
                     ... falls back to standard GRPO on the base group"   buffer_groups()
  App. H             the same buffer with the engine kept full            prompt_machine(), seed_machine()

Symbols (G rollouts per prompt; S seeds and K suffixes per seed in a split "SxK")
  x_0               -> thought_mdp.State of the prompt; its rollouts form the stream of lines 1-3
  seed, H_s         -> a failed Rollout of the stream; len(seed.thought_ids)
  h*                -> ResetIndex.h, 1-based in 1..H_s
  x*                -> thought_mdp.reset_state(seed, h*)
  G, S, K, base     -> cfg.group_size; split_sizes(cfg.split, G) = (G - S*K, S, K)

Choices, and why
  * The stream is sampled in rounds: the first draws the base group and the
    seeds at once (which settles almost every prompt), later ones max(2, S)
    rows while seeds are missing, up to `--seed-budget` rollouts (next_draw()).
    Row k of a prompt's stream draws from its own random key, so taking the
    first S incorrect rollouts as seeds and the first others as the base group
    is exactly the one-at-a-time procedure of lines 1-3.
  * A seed is an incorrect rollout with at least one thought that holds text
    (can_seed(): a chain with no thought is never a seed, as in the authors'
    release; it stays in the stream, and in the base group, with its reward).
  * Fallback (too few seeds within `--seed-budget`, 12 as in the authors'
    release): the step trains on one GRPO group of G for that prompt, the first
    `base` rollouts of the stream topped up with G - base fresh ones drawn after
    the search (the release's 1x4: the 4 kept chains and 4 more, normalised as
    one group of 8; at 1x8 and 2x4 the release reuses the search's chains
    instead); counted as `reset/grpo_fallbacks`.
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
  * A reset rule chooses h* in two halves (ResetRule), so that any schedule can
    run it: `ask` lists what a model must answer first (SRPO's localization
    prompt; nothing for a random or an oracle reset), `choose` reads the
    answers and returns the ResetIndex.

Schedules (`--schedule`)
  sequential  reset_prompt() for one prompt after another: the algorithm as
              written, and the oracle the tests hold the others to
  pipelined   (the default) each prompt and each seed is a machine of
              pipeline.py; a prompt's suffix group starts the moment its seed
              is known, beside other prompts' rollouts (App. H). The same
              buffer, token for token (tests); `--search-ahead A` draws A more
              stream rows with the first round and drops those not needed
  phases      the same machines, every phase run to its end as one batch

Run it
  python rrpo.py --demo                      # CPU: the classroom world (tiny_world.py), a few minutes
  python rrpo.py --demo smollm2-135m         # CPU: bundled SmolLM2 (smoke run)
  python rrpo.py --demo --split 2x4
  python rrpo.py --demo --schedule sequential   # Algorithm 2 one prompt after another: same buffers
  python rrpo.py --model allenai/OLMo-3-7B-Instruct
"""

import random
import time
from dataclasses import dataclass, field

import numpy as np

import grpo
import localize
import pipeline
import thought_mdp as tm


@dataclass
class ResetIndex:
    """How h* was chosen for one seed (Alg. 2, lines 4-5)."""

    h: int  # h*, 1-based in 1..H_s
    # a localizer's answer held a valid step (False: uniform fallback); None: no localizer
    parsed: bool = None
    n_tokens: int = 0  # tokens the localizer generated (App. H)
    h_ref: int = None  # a reference step for comparison only (a second localizer, or the true first error)
    path: str = None  # how a localizer's answer was read (localize.PATHS); None: no localizer
    answer: str = None  # the localizer's answer (the reset record)


def no_requests(engine, seed, cfg, step, key):
    """A reset rule that asks no model anything."""
    return []


@dataclass
class ResetRule:
    """How h* is chosen for one seed (Alg. 2, lines 4-5), in two halves.
    ask(engine, seed, cfg, step, key) -> [(engine, prompt ids, SamplingSettings)]: the
        requests a model must answer first, one completion each;
    choose(seed, answers, cfg, step, key) -> ResetIndex, from their Completions.
    key = (prompt, seed number) keys the rule's random draws."""

    choose: object
    ask: object = no_requests


@dataclass
class PromptBuffer:
    """What Alg. 2, lines 1-7 sampled for one prompt."""

    stream: list  # the rollouts drawn from x_0, in stream order (lines 1-3)
    base: list  # the base group G1; the GRPO fallback's group when seeds is None
    seeds: list  # the failed rollouts reset, one per suffix group; None when the search found too few
    resets: list = field(default_factory=list)  # (ResetIndex, suffix rollouts) per seed (lines 4-7)
    dropped_tokens: int = 0  # tokens of speculative stream rows dropped (--search-ahead)
    localize_s: float = 0.0  # seconds spent answering the rule's requests (sequential schedule)


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
        return (
            f"--base-group iid draws the seeds from the base group; "
            f"--split {cfg.split} has {n_base} base rollouts"
        )
    if cfg.seed_budget < n_base + n_seeds:
        return (
            f"--seed-budget {cfg.seed_budget} must cover the base group and the seeds of one prompt "
            f"({n_base} + {n_seeds} rollouts)"
        )
    return None


def can_seed(rollout):
    """An incorrect rollout with at least one thought that holds text: a chain with no
    thought has nothing to reset into, and the authors' release never takes one as a seed
    (it stays in the base group with its reward)."""
    return rollout.reward < 1 and any(text.replace(tm.STOP, "").strip() for text in rollout.thought_texts)


def failures(stream, cfg):
    """Positions of the first S rollouts of the search (the stream's first --seed-budget
    rows) that can seed (line 1)."""
    n_seeds = split_sizes(cfg.split, cfg.group_size)[1]
    return [i for i, r in enumerate(stream[: cfg.seed_budget]) if can_seed(r)][:n_seeds]


def next_draw(stream, cfg):
    """How many more rows of a prompt's stream to draw, given the rows drawn so far;
    0 when the stream is complete: the seeds are found, or the search budget is spent
    and the fallback group's fresh rows are drawn."""
    n_base, n_seeds, _ = split_sizes(cfg.split, cfg.group_size)
    if cfg.base_group == "iid":  # one draw of the base group; the seeds come from it
        return 0 if stream else n_base
    if not stream:
        return n_base + n_seeds
    if len(failures(stream, cfg)) == n_seeds:
        return 0
    if len(stream) < cfg.seed_budget:
        return min(max(2, n_seeds), cfg.seed_budget - len(stream))
    return cfg.seed_budget + cfg.group_size - n_base - len(stream)  # the fallback's fresh rows


def split_stream(stream, cfg):
    """Lines 1-3 read off a complete stream: (base group, seeds); when the search found
    too few seeds, (the fallback group, None): GRPO on G rollouts, the first `base` rows
    of the stream topped up with the fresh rows drawn after the search (as the authors'
    release does at 1x4: 4 + 4). The --base-group iid control falls back on its base group."""
    n_base, n_seeds, _ = split_sizes(cfg.split, cfg.group_size)
    failed = failures(stream, cfg)
    if len(failed) < n_seeds:
        if cfg.base_group == "iid":
            return stream[:n_base], None
        return stream[:n_base] + stream[cfg.seed_budget :], None
    others = stream if cfg.base_group == "iid" else [r for i, r in enumerate(stream) if i not in failed]
    return others[:n_base], [stream[i] for i in failed]


def random_index(seed, answers, cfg, step, key):
    """Alg. 2, line 4: h* ~ Unif{1, ..., H_s}, from the seed's own random key."""
    draw = random.Random(grpo.step_key(cfg, step, grpo.KEY_RANDOM_RESET, *key))
    return ResetIndex(draw.randint(1, len(seed.thought_ids)))


RANDOM = ResetRule(choose=random_index)


# -----------------------------------------------------------------------------
# Algorithm 2, lines 1-7, one line after another: the reference


def reset_prompt(engine, b, problem, cfg, step, rule):
    """The buffer of prompt b (a PromptBuffer), as Algorithm 2 writes it."""
    n_suffix = split_sizes(cfg.split, cfg.group_size)[2]
    x0 = tm.initial_state(engine.tokenizer, problem, cfg.thought)
    stream_key = grpo.step_key(cfg, step, grpo.KEY_SEARCH, b)  # row k: derive_key(stream_key, k)
    stream = []
    while n := next_draw(stream, cfg):  # line 1: iid rollouts from x_0 until the seeds fail
        stream += tm.sample_rollouts(engine, [x0], n, cfg.thought, stream_key, first=len(stream))
    base, seeds = split_stream(stream, cfg)  # lines 2-3: the seeds, and the base group without them
    found = PromptBuffer(stream, base, seeds)
    for j, seed in enumerate(seeds or []):  # none: the GRPO fallback (buffer_groups)
        start = time.perf_counter()
        asked = rule.ask(engine, seed, cfg, step, (b, j))  # line 5 asks the policy (srpo.py)
        answers = [judge.generate([prompt], settings)[0][0] for judge, prompt, settings in asked]
        found.localize_s += time.perf_counter() - start
        chosen = rule.choose(seed, answers, cfg, step, (b, j))  # lines 4-5: h*
        x_star = tm.reset_state(seed, chosen.h)  # line 6
        suffix_key = grpo.step_key(cfg, step, grpo.KEY_SUFFIX, b, j)
        suffixes = tm.sample_rollouts(engine, [x_star], n_suffix, cfg.thought, suffix_key)  # line 7
        found.resets.append((chosen, suffixes))
    return found


def reset_buffer(engine, problems, cfg, step, rule=RANDOM):
    """The two-group buffer of Alg. 2 for a batch of prompts, on cfg.schedule;
    `rule` chooses h* (random here, self-localized in srpo.py)."""
    start = time.perf_counter()
    if cfg.schedule == "sequential":
        found = [reset_prompt(engine, b, p, cfg, step, rule) for b, p in enumerate(problems)]
        fill = {"time/phase/localize_s": sum(f.localize_s for f in found)}
    else:
        sched = pipeline.Scheduler(engine, cfg.schedule)
        found = sched.run([prompt_machine(sched, b, p, cfg, step, rule) for b, p in enumerate(problems)])
        fill = sched.fill_metrics()
    return buffer_groups(found, cfg, fill, time.perf_counter() - start)


def buffer_groups(found, cfg, fill, seconds):
    """The step's groups from every prompt's PromptBuffer, and the step's metrics."""
    n_base = split_sizes(cfg.split, cfg.group_size)[0]
    groups, suffix_groups, seeds, chosen, owners = [], [], [], [], []
    for b, prompt in enumerate(found):
        if prompt.seeds is None:  # Sec. 4.2: fall back to GRPO (split_stream)
            groups.append(grpo.Group(b, "base", prompt.base))
            continue
        if n_base:
            groups.append(grpo.Group(b, "base", prompt.base))
        for seed, (index, suffixes) in zip(prompt.seeds, prompt.resets):
            seeds.append(seed)
            chosen.append(index)
            owners.append(b)
            suffix_groups.append(grpo.Group(b, "suffix", suffixes))  # line 7: one group per seed
    groups += suffix_groups
    suffixes = [r for g in suffix_groups for r in g.rollouts]
    indices = [c.h for c in chosen]
    lengths = [len(s.thought_ids) for s in seeds]
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
    trees = reset_records(found, owners, seeds, chosen, suffix_groups)
    t_localize = fill.get("time/phase/localize_s", 0.0)
    dropped = sum(f.dropped_tokens for f in found)
    sampled = sum(len(f.stream) for f in found)
    stats = {
        "tokens/base": sum(len(r.response_ids) for f in found for r in f.stream) + dropped,
        # --search-ahead rows dropped part-way, or finished past the decision
        "tokens/search_dropped": dropped,
        "tokens/suffix": sum(r.n_own_tokens for r in suffixes),
        "tokens/localize": sum(c.n_tokens for c in chosen),
        "time/gen_s": seconds - t_localize,
        "time/localize_s": t_localize,
        **fill,
        "reset/suffix_pass_rate": float(np.mean([r.reward for r in suffixes])) if suffixes else float("nan"),
        "reset/indices": indices,
        "reset/seed_lengths": lengths,
        "reset/relative_index": float(np.mean([h / n for h, n in zip(indices, lengths)]))
        if seeds
        else float("nan"),
        "reset/grpo_fallbacks": sum(f.seeds is None for f in found),
        "reset/search_rollouts": sampled,
        "reset/records": records,  # per seed: h*, H_s, a reference step if any, suffix pass rate
        "rollouts/generated": sampled + len(suffixes),
        "reset/trees": trees,  # the reset records; grpo.train writes them to resets.jsonl
    }
    if any(c.parsed is not None for c in chosen):  # a localizer chose h*: how its answers read (srpo.py)
        failed = sum(c.parsed is False for c in chosen)
        stats.update({"localize/parse_failures": failed, "localize/fallback_rate": failed / len(chosen)})
        stats.update({f"localize/path/{p}": sum(c.path == p for c in chosen) for p in localize.PATHS})
    return groups, stats


def reset_records(found, owners, seeds, chosen, suffix_groups):
    """One record per seed, everything needed to read a reset back: the problem, the
    seed's thoughts and answer, how h* was chosen (the localizer's answer and how it was
    read), and each suffix's own thoughts (from h* on), answer and reward; the base
    group's rewards beside them. The localizer's prompt is localize.LOCALIZE_PROMPT
    filled with the seed's thoughts, so it is not stored again."""
    records = []
    for b, seed, c, g in zip(owners, seeds, chosen, suffix_groups):
        problem = seed.problem
        base = found[b].base or []
        records.append(
            {
                "prompt": b,
                "problem": problem.get("id"),
                "question": problem.get("question"),
                "gold": problem.get("answer"),
                "seed": {"thoughts": seed.thought_texts, "answer": seed.answer, "finish": seed.finish_reason},
                "H_s": len(seed.thought_ids),
                "h": c.h,
                "path": c.path,  # None for a random or oracle reset
                "localizer_answer": c.answer,
                "h_ref": c.h_ref,
                "suffixes": [
                    {
                        "thoughts": r.thought_texts[c.h - 1 :],
                        "answer": r.answer,
                        "reward": r.reward,
                        "finish": r.finish_reason,
                    }
                    for r in g.rollouts
                ],
                "base_rewards": [r.reward for r in base],
            }
        )
    return records


# -----------------------------------------------------------------------------
# The same buffer with the engine kept full (App. H): machines of pipeline.py


def prompt_machine(sched, b, problem, cfg, step, rule):
    """reset_prompt() for prompt b as a machine. The stream is drawn in the same rounds
    (next_draw), and every row from the same key, so the buffer is the reference's. What
    differs is when: each seed's machine (lines 4-7) starts the moment the stream's
    finished prefix holds all the seeds, while the rest of the stream still samples.
    With --search-ahead A the first round draws A more rows, so that a prompt whose
    first rows are all right need not wait for another round; once the seeds and the
    base group are known the rows past them are dropped."""
    n_base, n_seeds, _ = split_sizes(cfg.split, cfg.group_size)
    x0 = tm.initial_state(sched.engine.tokenizer, problem, cfg.thought)
    stream_key = grpo.step_key(cfg, step, grpo.KEY_SEARCH, b)
    rounds, tasks, dropped = [], [], 0

    def draw(n):  # the next n rows of this prompt's stream
        first = sum(len(r.rows) for r in rounds)
        rounds.append(sched.sample([x0], n, cfg.thought, stream_key, "search", first=first))

    ahead = 0 if cfg.base_group == "iid" else min(cfg.search_ahead, cfg.seed_budget - n_base - n_seeds)
    draw(next_draw([], cfg) + ahead)
    while True:
        stream = pipeline.finished_prefix(rounds)
        failed = failures(stream, cfg)
        if len(failed) == n_seeds and not tasks:  # lines 4-7 start now, beside the rest of the stream
            for j, i in enumerate(failed):
                tasks.append(sched.spawn(seed_machine(sched, b, j, stream[i], cfg, step, rule)))
        needed = max(failed[-1] + 1, n_base + n_seeds) if len(failed) == n_seeds else None
        if ahead and needed and needed <= len(stream) and needed < len(rounds[0].rows):
            dropped += sched.cancel(rounds[0], range(needed, len(rounds[0].rows)))  # decided in round 1
            stream = stream[:needed]
        if all(r.done for r in rounds):
            n = next_draw(stream, cfg)
            if not n:
                break
            draw(n)
        yield
    base, seeds = split_stream(stream, cfg)
    yield from pipeline.wait(*tasks)
    return PromptBuffer(stream, base, seeds, [t.result for t in tasks], dropped)


def seed_machine(sched, b, j, seed, cfg, step, rule):
    """Lines 4-7 for seed j of prompt b as a machine: the rule's requests join the
    running batch; then x* and the suffix group. Returns (ResetIndex, suffixes)."""
    n_suffix = split_sizes(cfg.split, cfg.group_size)[2]
    asked = rule.ask(sched.engine, seed, cfg, step, (b, j))
    requests = [sched.generate(judge, [prompt], settings, "localize") for judge, prompt, settings in asked]
    yield from pipeline.wait(*requests)
    chosen = rule.choose(seed, [r.results[0] for r in requests], cfg, step, (b, j))  # lines 4-5
    x_star = tm.reset_state(seed, chosen.h)  # line 6
    suffix_key = grpo.step_key(cfg, step, grpo.KEY_SUFFIX, b, j)
    suffixes = sched.sample([x_star], n_suffix, cfg.thought, suffix_key, "suffix")
    yield from pipeline.wait(suffixes)  # line 7
    return chosen, suffixes.results


def build_buffer(engine, problems, cfg, step):
    return reset_buffer(engine, problems, cfg, step, RANDOM)


def main(argv=None):
    return grpo.main(argv, method="rrpo", buffer_fn=build_buffer, check=check_split)


if __name__ == "__main__":
    main()
