"""tiny_world.py: a classroom Thought-MDP world in which the first error of every
rollout is known exactly, small enough to train on a CPU in minutes, with
knobs (WorldConfig) for where and how often the hard decision comes.

The task: a chain of H digit operations modulo 10. Two additions or
subtractions alternate, and one step is a multiplication instead: "Start at
7. Repeat: add 3, subtract 5. Except (2): times 6. 8 steps. Work modulo 10."
Thought k states one intermediate result ("(1) 7+3=0</thought>"), the last
one boxes the answer. The multiplication is the hard decision: for a share
of the (digit, factor) pairs the warm start has mostly seen a wrong product,
so errors concentrate there, and a rollout's first erroneous thought is
computable (`first_error`). That ground truth is what the paper's setting
lacks: with it, the oracle reset of Theorem 1 (CPI-CARO) can run beside
self-localization (SRPO) and a random reset (RRPO), and the coverage of the
improvable state can be measured (`reached_clean`). This file is the world
alone; compare_resets.py runs the comparison on it, over the knobs.

Paper map
  Sec. 3.1, Thm. 1   coverage p of the improvable state: the share of rollouts that
                     reach the hard step with a clean prefix              reached_clean(), warm_start_report()
  Sec. 3.2           improvable states = thoughts where a better action exists;
                     the oracle's reset index is the true first error          first_error()
  Sec. 4.1           the Thought MDP: one intermediate result per thought      make_problem(), thought_text()
  Sec. 4.2, App. D   self-localization, warm-started to be imperfect          localization_examples()
  Thought-ICS        an autonomous verifier, warm-started to be imperfect      verification_examples()
  (companion work)

Symbols
  x_0               -> the prompt: ROLLOUT_PROMPT with "Start at s. Repeat: ... Work modulo 10."
  y_h               -> thought h: "(h) {x_(h-1)}{op}{a}={x_h}</thought>" (the last one also boxes x_H)
  G_{h,tau}         -> the improvable state of a failed rollout: the prefix before its first
                       wrong thought (first_error()), where a better next thought exists
  H                 -> WorldConfig.horizon, steps per chain; the caps allow H + 2 thoughts
  p                 -> coverage: problem["hard_steps"] reached with a clean prefix (reached_clean())

Knobs (WorldConfig; one flag each; a model is built per distinct config)
  horizon H, hard_at (the multiplication at step 2, "early", or at step H,
  "late"), hard_share (share of the 80 multiplication pairs that are hard),
  hard_acc / easy_acc (how often a demonstration gets a hard / any other step
  right; an easy slip is a sign error), loc_acc (localization labels right,
  else one step off), verify_acc (verification verdicts right), warm_key (the
  warm start's random key: the same task, another draw of its examples and
  first weights; imitation_report() says how close each build comes to the
  demonstrations it imitates), uncertain m and uncertain_acc a (many uncertain
  steps: instead of the multiplication, m additions of their own digit spread
  along the chain, the last at step H, each right with probability a at the
  sampling temperature; step_report() measures it on the warm start's own
  rollouts; hard_at, hard_share and hard_acc are then unused), loc_scale (the
  warm start's localization examples, a multiple of the default count; 4 at
  H = 16 still left self-localization at chance, docs/classroom.md), max_epochs
  (the cap on the warm start's epochs), loc_uniform (the share of localization
  examples whose error sits at a uniform step) and layers (the Llama's depth).
  Self-localization here names where errors usually sit rather than reading
  the chain, and none of loc_scale, loc_uniform and layers changed that
  (warm_start_report(), docs/classroom.md). Scripts take
  a world by name: `tiny-world` (the default config) or
  `tiny-world:horizon=16:hard_at=late:hard_share=0.3` (the knobs that differ);
  the training problems are `tiny-world-train[:...]` (benchmarks.py).

Pieces
  * a byte-level BPE tokenizer trained here on the world's own text (the fixed
    instructions of the prompts merge into a few long tokens, so sequences stay
    short; no token crosses `</thought>`) and a ~1M-parameter Llama (a real
    `transformers` class);
  * a warm start on noisy demonstrations, on localization examples and on
    verification examples (is this answer right? \\boxed{yes} or \\boxed{no},
    for thought_ics.py); built on first use (about 2 minutes on 2 cores) and
    cached under ~/.cache/srpo-resets/tiny-world-v6-<hash of the knobs>, so a
    changed knob never reuses a stale model; warm_start_report() measures it
    (pass rate greedy and at the training temperature, coverage, depth of first
    errors, self-localization against a random step), imitation_report() how
    close it comes to its demonstrations.

Deviations, and why
  * Caps of H + 2 thoughts x 24 tokens (WorldConfig.caps): the paper's 20 x 256
    are for free-form reasoning; a chain here has exactly H short thoughts.
  * Thoughts are numbered "(k)" and the multiplication's step is named "(k)" in
    the problem: without the numbers a 1M-parameter model did not learn, within
    a few minutes of warm start, which operation comes next in a 16-step chain (an
    earlier version listed all H operations; at H = 16 the warm start's first
    error sat at step 1-2 in most rollouts).
  * Demonstrations' easy slips are one fixed wrong value (a sign error), not a
    random digit: spread over nine digits, a 10% slip rate all but vanishes at
    the sampling temperature 0.7, and no step but the hard one would ever fail.
  * Chains longer than the default 8 steps get proportionally fewer examples
    (8/H of them) and smaller batches, so a build takes about as many
    optimizer steps at every horizon. (Until the loss-following schedule below,
    demonstrations and verification examples were scaled by 4/H: at H = 8 half
    as many demonstrations in batches of 32, which crossed the plateau only
    after 6.7 epochs under the new schedule, against 2.3-2.9 with all of them
    in batches of 64.)
  * The warm start's schedule follows its loss, not a fixed number of epochs
    (build()): the loss sits on a plateau, then drops within an epoch (the
    model learns which operation comes next), and when depends on the random
    key and on float rounding. A fixed seven epochs gave greedy pass rates of
    0.32-0.48 over four random keys, and another CPU kind a weaker model; the
    peak rate until the loss falls below LOSS_TARGET, then a cosine anneal of
    ANNEAL_EPOCHS, gave 0.461 in every build we tried, on both kernel families
    (docs/performance.md).
  * Uncertain steps (the uncertain knob) are calibrated at the sampling
    temperature T = 0.7, not in the demonstrations: a demonstration gets one
    right with probability q, logit(q) = T logit(a) (demo_acc()), which a model
    that imitates them samples right with probability a. Measured on the
    m = 4, a = 0.42 world: 0.398 pooled over its four steps, easy steps
    0.959; a = 0.032 came out at 0.011 (docs/uncertain-sweep/).
  * In a world with uncertain steps every slip states the right value plus
    one (SLIP), easy steps included, so slips never cancel and a rollout
    passes only if it makes none, as the regime map assumes. A first version
    multiplied at the uncertain steps with a fixed wrong product per pair:
    a second slip landed back on the true chain about one time in nine, and
    the m = 4, a = 0.24 world passed 0.105 of the time where the product of
    its step rates was 0.002.
  * The knobs' defaults were chosen by looking only at the warm start's
    measured targets (pass rate, coverage, localization above chance), never at
    a comparison's outcome.

Run it
  python tiny_world.py                              # build once (about 2 minutes), a sample chain, the report
  python tiny_world.py --horizon 16 --hard-at late --hard-share 0.3  # another world: its own model and report
  python tiny_world.py --warm-key 1                   # the same world warm-started from another random key
  python tiny_world.py --uncertain 4 --uncertain-acc 0.42  # 4 uncertain steps, each right 42% at T = 0.7
  python compare_resets.py --quick                    # GRPO / RRPO / SRPO / ORACLE and controls on this world
  python srpo.py --demo                                 # SRPO alone on this world, the README's first command
"""

import argparse
import collections
import dataclasses
import hashlib
import json
import math
import os
import random
import time

import numpy as np
import torch

import cpu_share
import engines
import localize
import models
import thought_mdp as tm

OPS = {"+": lambda x, a: (x + a) % 10, "-": lambda x, a: (x - a) % 10, "*": lambda x, a: (x * a) % 10}
WORDS = {"+": "add", "-": "subtract", "*": "times"}
WORLD_SEED = 1234  # fixes which multiplications are hard, and the warm start (with WorldConfig.warm_key)
HARD_AT = ("early", "late")  # where a chain's multiplication sits (WorldConfig.hard_at)
# a world with uncertain steps: every slip of a demonstration, at an uncertain step or any other,
# states the right value plus one. Additions and subtractions carry an offset along unchanged, so
# a chain with k slips ends k off: it fails unless k is a multiple of 10, more slips than a chain
# of H < 10 steps has. (With a fixed wrong product per pair or a sign slip, as in the classic
# world, a second slip lands back on the true chain about one time in nine: at m = 4 steps of
# a = 0.24, rollouts passed 0.105 of the time where the product of the step rates was 0.002.)
SLIP = 1
VERSION = "v6"  # part of every cache key; bumped whenever the warm start's recipe changes
# the warm start's schedule (build()): peak rate until the loss falls below the target, then an anneal
PEAK_LR, LOSS_TARGET, ANNEAL_EPOCHS, MAX_EPOCHS = 3e-3, 0.3, 2, 12


# knobs added after worlds had been built and cached: in the key only away from their defaults
LATER_KNOBS = ("loc_scale", "loc_uniform", "layers", "max_epochs")


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    # the classroom world's knobs; a model is built and cached per distinct config
    horizon: int = 8  # H: steps per chain (the caps follow: H + 2 thoughts)
    hard_at: str = "early"  # where the chain's one multiplication sits: early (step 2) or late (step H)
    # share of the multiplications (x, a) that are hard (the demonstrations mostly get them wrong)
    hard_share: float = 0.6
    hard_acc: float = 0.2  # warm start: how often a demonstration gets a hard multiplication right
    # warm start: how often a demonstration gets any other step right (else a sign slip)
    easy_acc: float = 0.9
    # warm start: how often a localization label is drawn right (else one step off, kept in the chain)
    loc_acc: float = 0.7
    verify_acc: float = 0.85  # warm start: how often a verification verdict (thought_ics.py) is right
    # the warm start's random key (its examples, their order, the first weights); the task stays the same
    warm_key: int = 0
    # m uncertain steps (0: off, the one multiplication above): m additions of their own digit spread
    # along the chain (uncertain_steps()), every one of them uncertain (hard_at, hard_share and
    # hard_acc are then unused)
    uncertain: int = 0
    # a: how often the warm start gets an uncertain step right *at the sampling temperature*; the
    # demonstrations are right with demo_acc(), the rate whose imitation samples a (step_report())
    uncertain_acc: float = 0.5
    # warm start: the localization examples, a multiple of the default count (3000, and for chains
    # longer than 8 steps 3000 x 8 / H, as many steps as H = 8's); at H = 16 the default's 1500
    # leave self-localization at chance, and 4 (6000) did not lift it
    loc_scale: float = 1.0
    # warm start: the share of the localization examples whose first error sits at a uniform step;
    # the others carry the demonstrations' own errors, mostly at the most common step
    loc_uniform: float = 0.5
    # the warm-started Llama's layers (width 128, 4 heads; about 0.2M parameters a layer)
    layers: int = 4
    # the warm start's epochs at most (build()): a world whose loss stays above LOSS_TARGET at the
    # peak rate trains this long (an H = 4 world with m = 2 uncertain steps sat at 0.60); the tests
    # build their uncertain world with 4
    max_epochs: int = MAX_EPOCHS

    def caps(self):
        """The Thought MDP's caps for this world (the paper's: 20 thoughts x 256 tokens)."""
        return tm.ThoughtConfig(
            max_thoughts=self.horizon + 2, max_thought_tokens=24, max_response_tokens=16 * (self.horizon + 2)
        )

    def key(self):
        """A short hash of every knob: the cache folder's name, so a changed knob never reuses a model.
        The uncertain-step knobs enter only when on, and LATER_KNOBS only away from their
        defaults, so the worlds built before them keep their key."""
        # every knob in its field's type: loc_scale=4 and loc_scale=4.0 are one world
        knobs = {f.name: f.type(getattr(self, f.name)) for f in dataclasses.fields(self)}
        if not self.uncertain:
            del knobs["uncertain"], knobs["uncertain_acc"]
        for name in LATER_KNOBS:  # at its default, a knob added later leaves the key as it was
            if getattr(self, name) == getattr(WorldConfig, name):
                del knobs[name]
        return hashlib.sha1(json.dumps([VERSION, knobs], sort_keys=True).encode()).hexdigest()[:10]

    def name(self, kind="tiny-world"):
        """The name scripts take for this world's model (kind tiny-world) or training problems
        (tiny-world-train): `tiny-world:horizon=16:hard_at=late` lists the knobs that differ from
        the default (a colon, not a comma: evaluate.py's --benchmarks is a comma-separated list)."""
        changed = [f"{k}={v}" for k, v in dataclasses.asdict(self).items() if v != getattr(WorldConfig, k)]
        return ":".join([kind] + changed)


def parse(name):
    """(kind, WorldConfig) for a world name (tiny-world[:knob=value...] or
    tiny-world-train[:knob=value...]), None for any other name; a bad knob is a ValueError."""
    kind, *items = name.split(":")
    if kind not in ("tiny-world", "tiny-world-train"):
        return None
    types = {f.name: f.type for f in dataclasses.fields(WorldConfig)}
    knobs = {}
    for item in filter(None, items):
        key, _, value = item.partition("=")
        if key not in types or not value:
            raise ValueError(
                f"bad world knob {item!r} in {name!r}; knobs: {', '.join(types)} (as :knob=value)"
            )
        knobs[key] = types[key](value)
    return kind, check(WorldConfig(**knobs))


def check(world):
    """The world itself, or a ValueError naming the knob that is out of range."""
    if world.hard_at not in HARD_AT:
        raise ValueError(f"hard_at must be one of {', '.join(HARD_AT)}, got {world.hard_at!r}")
    if not 3 <= world.horizon <= 40:
        raise ValueError(f"horizon must be 3-40 steps, got {world.horizon}")
    for k in ("hard_share", "hard_acc", "easy_acc", "loc_acc", "verify_acc", "loc_uniform"):
        if not 0 <= getattr(world, k) <= 1:
            raise ValueError(f"{k} must be in [0, 1], got {getattr(world, k)}")
    if not 0 <= world.uncertain <= world.horizon:
        raise ValueError(f"uncertain must be 0 (off) to the horizon ({world.horizon}), got {world.uncertain}")
    if world.uncertain and not 0.01 <= world.uncertain_acc <= 0.99:
        raise ValueError(f"uncertain_acc must be in [0.01, 0.99], got {world.uncertain_acc}")
    if not 0 < world.loc_scale <= 10:
        raise ValueError(f"loc_scale must be in (0, 10], got {world.loc_scale}")
    if not 1 <= world.layers <= 16:
        raise ValueError(f"layers must be 1-16, got {world.layers}")
    if not ANNEAL_EPOCHS < world.max_epochs <= 40:
        raise ValueError(
            f"max_epochs must be {ANNEAL_EPOCHS + 1}-40 (longer than the anneal), got {world.max_epochs}"
        )
    return world


def uncertain_steps(world):
    """Where the chain's special steps sit: with the uncertain knob off, its one
    multiplication at step 2 (hard_at early) or H (late); with m uncertain steps, m spread evenly along
    the chain, the last at step H (H = 8: m = 2 at 4, 8; m = 4 at 2, 4, 6, 8)."""
    if not world.uncertain:
        return [2 if world.hard_at == "early" else world.horizon]
    m = world.uncertain
    return sorted({max(1, round(world.horizon * i / m)) for i in range(1, m + 1)})


def demo_acc(world):
    """How often a demonstration gets an uncertain step right: q with
    q^(1/T) / (q^(1/T) + (1 - q)^(1/T)) = uncertain_acc at the sampling temperature T,
    that is logit(q) = T logit(a). A model that imitates the demonstrations puts
    probability q on the right value and 1 - q on the one slip its demonstrations
    show (the right value plus SLIP); sampling at temperature T then gets the step
    right with probability a (the nucleus, top-p 0.95, can only drop the slip once
    1 - a < 0.05)."""
    t, a = tm.ThoughtConfig().temperature, world.uncertain_acc
    return 1 / (1 + math.exp(-t * math.log(a / (1 - a))))


def cache_dir(world):
    return os.path.join(models.CACHE_DIR, f"tiny-world-{VERSION}-{world.key()}")


# -----------------------------------------------------------------------------
# The task


def make_problem(rng, index, split, world=WorldConfig(), hard=None):
    """A chain of H digit operations mod 10: two operations (add or subtract a digit)
    that alternate, and one multiplication at step 2 (hard_at early) or step H
    (late) instead; with its true intermediate values and its hard step (a
    multiplication the warm start mostly gets wrong), if any. With the uncertain
    knob on, m additions of their own digit instead, spread along the chain
    (uncertain_steps()), every one of them a hard step."""
    hard = hard_pairs(world) if hard is None else hard
    start, at = rng.randrange(10), uncertain_steps(world)
    period = [(rng.choice("+-"), rng.randrange(1, 10)) for _ in range(2)]
    if world.uncertain:  # each uncertain step an addition of its own digit
        special = {k: ("+", rng.randrange(1, 10)) for k in at}
        rule = ", ".join(f"({k}) add {a}" for k, (_, a) in special.items())
    else:
        special = {at[0]: ("*", rng.randrange(2, 10))}
        rule = f"({at[0]}): times {special[at[0]][1]}"
    chain, x, hard_steps = [], start, []
    for k in range(1, world.horizon + 1):
        op, a = special[k] if k in at else period[(k - 1) % 2]
        if world.uncertain and k in at or op == "*" and (x, a) in hard:
            hard_steps.append(k)
        x = OPS[op](x, a)
        chain.append([op, a, x])
    (o1, a1), (o2, a2) = period
    question = (
        f"Start at {start}. Repeat: {WORDS[o1]} {a1}, {WORDS[o2]} {a2}. Except {rule}. "
        f"{world.horizon} steps. Work modulo 10."
    )
    return {
        "id": f"tiny-{split}-{index}",
        "kind": "math",
        "answer": str(x),
        "start": start,
        "chain": chain,
        "hard_steps": hard_steps,
        "question": question,
    }


def problems(split, n, key=0, n_train=4000, world=WorldConfig()):
    """Training ("train") and held-out ("test") problems; a held-out chain never
    repeats one of the first n_train training chains."""
    rng, hard = random.Random(f"{split}-{key}"), hard_pairs(world)
    if split == "train":
        return [make_problem(rng, i, split, world, hard) for i in range(n)]
    seen = {json.dumps([p["start"], p["chain"]]) for p in problems("train", n_train, key, world=world)}
    out = []
    while len(out) < n:
        p = make_problem(rng, len(out), split, world, hard)
        if json.dumps([p["start"], p["chain"]]) not in seen:
            out.append(p)
    return out


def thought_text(k, prev, op, a, value, final):
    """Thought k of a chain: "(k) 7+5=2</thought>", the last one boxing its value."""
    return f"({k}) {prev}{op}{a}={value}" + (f" \\boxed{{{value}}}" if final else "") + tm.STOP


def hard_pairs(world=WorldConfig()):
    """The multiplications (x, a) the demonstrations mostly get wrong, and their wrong
    product (none with the uncertain knob on: its steps slip by SLIP)."""
    rng = random.Random(WORLD_SEED)
    pairs = {}
    if world.uncertain:
        return pairs
    for x in range(10):
        for a in range(2, 10):
            if rng.random() < world.hard_share:
                pairs[(x, a)] = (x * a + rng.randrange(1, 10)) % 10
    return pairs


def demonstration(problem, rng, hard, world=WorldConfig(), error_at=None):
    """A noisy worked solution: thoughts and the true first error (None if correct).
    Hard multiplications are right with probability hard_acc, an uncertain step with
    demo_acc() (its slip: one up, as every slip in such a world), other steps easy_acc;
    `error_at` forces the first error to step error_at (for localization examples)."""
    x, thoughts, first = problem["start"], [], None
    for k, (op, a, _) in enumerate(problem["chain"], 1):
        right = OPS[op](x, a)
        if error_at is not None:
            wrong = k == error_at
        elif world.uncertain and k in problem["hard_steps"]:
            wrong = rng.random() > demo_acc(world)
        elif op == "*" and (x, a) in hard:
            wrong = rng.random() > world.hard_acc
        else:
            wrong = rng.random() > world.easy_acc
        value = right
        if wrong and world.uncertain:  # every slip one up (SLIP): slips never cancel
            value = (right + SLIP) % 10
            first = first or k
        elif wrong:  # a hard product's usual wrong value, an easy step's sign slip, else a random digit
            value = (
                hard.get((x, a), (right + rng.randrange(1, 10)) % 10)
                if op == "*"
                else OPS["+-".replace(op, "")](x, a)
            )
            value = value if value != right else (right + 1) % 10
            first = first or k
        thoughts.append(thought_text(k, x, op, a, value, k == len(problem["chain"])))
        x = value
    return thoughts, first


def first_error(problem, thought_texts):
    """The 1-based index of the first thought that does not state the true next
    value of the chain (format slips count as errors); None when all are right."""
    for k, text in enumerate(thought_texts, 1):
        if k > len(problem["chain"]):
            return k
        op, a, value = problem["chain"][k - 1]
        prev = problem["start"] if k == 1 else problem["chain"][k - 2][2]
        if not text.strip().startswith(f"({k}) {prev}{op}{a}={value}"):
            return k
    return None if len(thought_texts) == len(problem["chain"]) else len(thought_texts)


def reached_clean(problem, thought_texts):
    """Coverage of Theorem 1 for one rollout: whether it reaches the problem's first
    hard step with a clean prefix (None when the problem has no hard step)."""
    if not problem.get("hard_steps"):
        return None
    first = first_error(problem, thought_texts)
    return first is None or first >= problem["hard_steps"][0]


# -----------------------------------------------------------------------------
# Tokenizer, model, warm start


def chain_rollout(problem, thoughts, reward=0.0):
    """A written chain of thoughts as a Rollout (token ids are not needed to render it for a
    localizer or a verifier, so each thought gets a placeholder)."""
    return tm.Rollout(problem, [], [[0]] * len(thoughts), thoughts, "answer", reward)


def localization_examples(rng, hard, n, world=WorldConfig()):
    """(failed rollout, label) pairs: a chain with its first error at a known step,
    a share 1 - loc_uniform (half by default) with the demonstrations' own noise (so
    errors sit where the policy makes them, mostly on hard multiplications) and the
    rest at a uniform step; labelled correctly with probability loc_acc and one step off otherwise
    (kept inside the chain, so at its first and last step a slip may land right)."""
    out = []
    while len(out) < n:
        p = make_problem(rng, len(out), "loc", world, hard)
        if rng.random() < 1 - world.loc_uniform:
            thoughts, k = demonstration(p, rng, hard, world)
            if k is None:
                continue
        else:
            k = rng.randrange(1, len(p["chain"]) + 1)
            thoughts, _ = demonstration(p, rng, hard, world, error_at=k)
        label = k if rng.random() < world.loc_acc else min(max(1, k + rng.choice([-1, 1])), len(thoughts))
        rollout = chain_rollout(p, thoughts)
        out.append((rollout, f"\\boxed{{{label}}}"))
    return out


def verification_examples(rng, hard, n, world=WorldConfig()):
    """(answer to check, verdict) pairs for thought_ics.py's autonomous verifier:
    noisy demonstrations, judged by whether their answer is right, with the
    verdict wrong with probability 1 - verify_acc."""
    out = []
    for i in range(n):
        p = make_problem(rng, i, "verify", world, hard)
        thoughts, first = demonstration(p, rng, hard, world)
        verdict = (first is None) != (rng.random() > world.verify_acc)
        out.append(
            (
                chain_rollout(p, thoughts, float(first is None)),
                "\\boxed{yes}" if verdict else "\\boxed{no}",
            )
        )
    return out


def build_tokenizer(texts):
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers import models as bpe_models
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(bpe_models.BPE())
    # no token crosses a thought boundary: `</thought>` always ends a pre-token,
    # while the fixed instruction text may merge into a few long tokens
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(tm.STOP, behavior="merged_with_previous"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1500,
        special_tokens=["<|pad|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|pad|>")
    tok.chat_template = models.CHATML_TEMPLATE
    return tok


def horizon_scale(world):
    """The share of the warm start's examples a chain of H steps gets: every one at H <= 8,
    8 / H for longer chains (as many tokens, and optimizer steps, as at H = 8)."""
    return min(1.0, 8 / world.horizon)


def example_counts(world, n_demos=4000, n_loc=3000, n_verify=2000):
    """The warm start's demonstrations, localization and verification examples
    (horizon_scale() of each), the localization examples times loc_scale."""
    scale = horizon_scale(world)
    return int(n_demos * scale), int(n_loc * scale * world.loc_scale), int(n_verify * scale)


def build(
    world=WorldConfig(),
    out_dir=None,
    n_demos=4000,
    n_loc=3000,
    n_verify=2000,
    progress=True,
):
    """Tokenizer + tiny Llama warm-started on noisy demonstrations, localization
    examples and verification examples; saved to out_dir (default: the world's
    cache folder). Longer chains get proportionally fewer examples (the same
    number of steps); the schedule follows the loss (module docstring)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir = out_dir or cache_dir(world)
    key = engines.derive_key(WORLD_SEED, world.warm_key) if world.warm_key else WORLD_SEED
    rng = random.Random(key)
    torch.manual_seed(key)
    hard = hard_pairs(world)
    cfg = tm.ThoughtConfig()
    n_demos, n_loc, n_verify = example_counts(world, n_demos, n_loc, n_verify)
    scale = horizon_scale(world)
    demos = []
    for i in range(n_demos):
        p = make_problem(rng, i, "warm", world, hard)
        demos.append((p, "".join(demonstration(p, rng, hard, world)[0])))
    loc = localization_examples(rng, hard, n_loc, world)
    checks = verification_examples(rng, hard, n_verify, world)
    # the tokenizer learns from the very text the model will see
    raw = [tm.ROLLOUT_PROMPT.format(question=tm.format_question(p)) + r for p, r in demos[:400]]
    raw += [
        localize.LOCALIZE_PROMPT.format(
            question=tm.format_question(r.problem),
            chain=localize.render_chain(r.thought_texts),
            n_steps=len(r.thought_texts),
        )
        + a
        for r, a in loc[:300]
    ]
    raw += [
        localize.VERIFY_PROMPT.format(
            question=tm.format_question(r.problem), chain=localize.render_chain(r.thought_texts)
        )
        + a
        for r, a in checks[:200]
    ]
    tokenizer = build_tokenizer(raw)
    examples = [(tm.encode_prompt(tokenizer, p, cfg), response) for p, response in demos]
    examples += [(localize.localization_prompt(tokenizer, r), answer) for r, answer in loc]
    examples += [(localize.verification_prompt(tokenizer, r), answer) for r, answer in checks]
    seqs = [
        (prompt, tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
        for prompt, answer in examples
    ]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=world.layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    opt = torch.optim.AdamW(model.parameters(), lr=PEAK_LR, weight_decay=0.0)
    bs = max(8, int(64 * scale))  # (B,) sequences a step: as many optimizer steps at every horizon
    per_epoch = len(seqs) // bs
    # The schedule follows the loss, not the clock (docs/performance.md): half an epoch of
    # warm-up, the peak rate until the loss (mean of the last 100 steps) falls below LOSS_TARGET,
    # which it does in one sudden drop whose timing depends on the random key and on float
    # rounding, then a cosine anneal over ANNEAL_EPOCHS; at world.max_epochs at the latest.
    model.train()
    step, recent, anneal_at, epoch = 0, [], None, 0
    while anneal_at is None or step < anneal_at + ANNEAL_EPOCHS * per_epoch:
        rng.shuffle(seqs)
        for b in range(0, per_epoch * bs, bs):
            if anneal_at is None and (
                (len(recent) == 100 and np.mean(recent) < LOSS_TARGET)
                or step >= (world.max_epochs - ANNEAL_EPOCHS) * per_epoch
            ):
                anneal_at = step
            if anneal_at is None:
                lr = PEAK_LR * min(1.0, (step + 1) / (per_epoch // 2))
            else:
                done = (step - anneal_at) / (ANNEAL_EPOCHS * per_epoch)
                if done >= 1:
                    break
                lr = PEAK_LR * 0.5 * (1 + math.cos(math.pi * done))
            for group in opt.param_groups:
                group["lr"] = lr
            loss = answer_loss(model, seqs[b : b + bs], tokenizer.pad_token_id)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            recent = (recent + [loss.item()])[-100:]
            step += 1
        epoch += 1
        if progress:
            phase = (
                f"annealing since epoch {anneal_at / per_epoch:.1f}" if anneal_at is not None else "peak rate"
            )
            print(f"tiny-world warm start: epoch {epoch}, loss {np.mean(recent):.3f} ({phase})")
    model.eval()
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return model, tokenizer


def answer_loss(model, batch, pad_id):
    """Mean next-token cross-entropy on the answers' tokens only: the model's logits are
    computed at the positions that predict an answer token, not at every position (a
    localization or verification example's prompt is most of its length)."""
    # (B, T) right-padded
    ids, attention = engines.pad_batch([p + r for p, r in batch], pad_id, side="right")
    targets = torch.full(ids.shape, -100)  # (B, T): the token each position predicts, -100 = none
    for i, (p, r) in enumerate(batch):
        targets[i, len(p) - 1 : len(p) + len(r) - 1] = torch.tensor(r)
    hidden = model.model(input_ids=ids, attention_mask=attention).last_hidden_state  # (B, T, D)
    where = targets != -100
    logits = model.lm_head(hidden[where])  # (N, V) at the N positions that predict an answer token
    return torch.nn.functional.cross_entropy(logits, targets[where])


def load(world=WorldConfig(), dtype=None, device=None):
    """The world's warm-started model, built on first use and cached under its key."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = cache_dir(world)

    def make(out):
        print(
            f"building the tiny-world model {world.name()} once (about 2 minutes on 2 cores); "
            f"cached in {path}"
        )
        build(world, out_dir=out)

    models.made_once(path, make)  # processes side by side build a world once; the others wait
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), AutoTokenizer.from_pretrained(path)


# -----------------------------------------------------------------------------
# The warm start's targets and the world's coverage, measured


def warm_start_report(engine, world=WorldConfig(), n=128, key=1):
    """On n held-out chains, 2 rollouts each at the training temperature: the pass
    rate (and greedy, as the demos validate); the coverage p-hat (share of rollouts
    on a problem with a hard step that reach its first hard step with a clean
    prefix) and the share of all rollouts that
    do; where first errors sit (mean depth / H); and how often self-localization
    names the true first error of the policy's own failures, against a random step and
    against always naming the sample's most common first-error step (mode_step), with its
    accuracy on the failures that do not fail there (off_mode), and on n held-out chains
    whose first error sits at a uniform step (uniform, chance 1 / H): what reading the chain
    adds to knowing where errors usually sit."""
    caps = world.caps()
    states = [tm.initial_state(engine.tokenizer, p, caps) for p in problems("test", n, world=world)]
    rollouts = tm.sample_rollouts(engine, states, 2, caps, key=key)
    greedy = tm.sample_rollouts(engine, states, 1, dataclasses.replace(caps, temperature=0.0))
    failed = [r for r in rollouts if r.reward < 1]
    truth = [first_error(r.problem, r.thought_texts) for r in failed]
    greedy_localizer = localize.LocalizeConfig(**localize.BEFORE_RELEASE)  # as the reports were measured
    found = [loc.index for loc in localize.localize(engine, failed, greedy_localizer)]
    reached = [reached_clean(r.problem, r.thought_texts) for r in rollouts]
    # chains whose first error sits at a uniform step (no label noise): what reading the chain
    # buys where the usual place of errors does not help (chance: 1 / H)
    rng, hard = random.Random(key), hard_pairs(world)
    uniform, at = [], []
    for p in problems("test", n, key=key, world=world):
        at.append(rng.randint(1, world.horizon))
        thoughts, _ = demonstration(p, rng, hard, world, error_at=at[-1])
        uniform.append(chain_rollout(p, thoughts))
    read = [loc.index for loc in localize.localize(engine, uniform, greedy_localizer)]
    # the stricter baseline: a localizer that always names this sample's most common first error
    [(mode, at_mode)] = collections.Counter(truth).most_common(1) or [(None, 0)]
    off_mode = [h == t for h, t in zip(found, truth) if t != mode]
    return {
        "world": world.name(),
        "pass_rate": float(np.mean([r.reward for r in rollouts])),
        # greedy, as the demos validate (their 128 validation chains are another draw)
        "greedy_pass_rate": float(np.mean([r.reward for r in greedy])),
        "failures": len(failed),
        "coverage": float(np.mean([c for c in reached if c is not None] or [np.nan])),
        "coverage_all": float(np.mean([bool(c) for c in reached])),
        "first_error_depth": float(np.mean([t / world.horizon for t in truth if t] or [np.nan])),
        "truth_known": all(t is not None for t in truth),
        "localization_accuracy": float(np.mean([h == t for h, t in zip(found, truth)])),
        "random_step_accuracy": float(np.mean([1 / len(r.thought_ids) for r in failed])),
        "mode_step": mode,
        "mode_step_accuracy": at_mode / len(truth) if truth else float("nan"),
        # on the failures whose first error is not at the most common step: reading the chain
        "localization_accuracy_off_mode": float(np.mean(off_mode)) if off_mode else float("nan"),
        "localization_accuracy_uniform": float(np.mean([h == k for h, k in zip(read, at)])),
    }


def imitation_report(engine, world=WorldConfig(), n=128, key=2):
    """How closely the warm start imitates its demonstrations: the pass rate of its
    samples at temperature 1 without a nucleus (the demonstrations' own distribution,
    if imitated exactly) on n held-out chains x 2, against the demonstrations' rate
    on the same chains (easy_acc per step, hard_acc on a hard multiplication, along
    the true chain). The build's target: a capability fixed by the world's knobs,
    not by the float kernels that trained it."""
    caps = dataclasses.replace(world.caps(), temperature=1.0, top_p=1.0)
    chains = problems("test", n, world=world)
    states = [tm.initial_state(engine.tokenizer, p, caps) for p in chains]
    rollouts = tm.sample_rollouts(engine, states, 2, caps, key=key)
    hard_acc = demo_acc(world) if world.uncertain else world.hard_acc
    expected = [
        hard_acc ** len(p["hard_steps"]) * world.easy_acc ** (world.horizon - len(p["hard_steps"]))
        for p in chains
    ]
    return {
        "pass_rate_t1": float(np.mean([r.reward for r in rollouts])),
        "demonstrations": float(np.mean(expected)),
    }


def step_report(engine, world=WorldConfig(), n=128, samples=4, key=3):
    """Each step's success rate at the sampling temperature, on the warm start's own
    rollouts (n held-out chains x `samples`): at step k, the share of rollouts whose
    prefix is clean up to k - 1 that state step k right. `uncertain_acc` pools the
    multiplications (with the uncertain knob on, what was asked as uncertain_acc),
    `easy_acc` the other steps; `per_step` is the rate at each step with at least 20
    clean arrivals; `first_errors` counts where the failed rollouts' first errors sit."""
    caps = world.caps()
    chains = problems("test", n, world=world)
    states = [tm.initial_state(engine.tokenizer, p, caps) for p in chains]
    rollouts = tm.sample_rollouts(engine, states, samples, caps, key=key)
    arrived, right = np.zeros(world.horizon + 1), np.zeros(world.horizon + 1)  # by step (1-based)
    hard_arrived = hard_right = easy_arrived = easy_right = 0
    first_errors = {}
    for r in rollouts:
        first = first_error(r.problem, r.thought_texts)
        if first is not None:
            first_errors[first] = first_errors.get(first, 0) + 1
        for k in range(1, min(first or world.horizon, world.horizon) + 1):  # steps reached clean
            ok = first is None or k < first
            arrived[k] += 1
            right[k] += ok
            if k in r.problem["hard_steps"]:
                hard_arrived, hard_right = hard_arrived + 1, hard_right + ok
            else:
                easy_arrived, easy_right = easy_arrived + 1, easy_right + ok
    return {
        "pass_rate": float(np.mean([r.reward for r in rollouts])),
        "uncertain_steps": uncertain_steps(world),
        "uncertain_acc": hard_right / hard_arrived if hard_arrived else None,
        "uncertain_arrivals": int(hard_arrived),
        "easy_acc": easy_right / easy_arrived if easy_arrived else None,
        "per_step": {
            k: round(right[k] / arrived[k], 3) for k in range(1, world.horizon + 1) if arrived[k] >= 20
        },
        "first_errors": dict(sorted(first_errors.items())),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Build (once) and measure the classroom world's warm-started model"
    )
    parser.add_argument("--n", type=int, default=128, help="held-out chains to measure on")
    tm.add_flags(parser, WorldConfig, choices={"hard_at": HARD_AT})
    args = parser.parse_args(argv)
    try:
        world = check(WorldConfig(**tm.given(args, WorldConfig)))
    except ValueError as e:
        parser.error(str(e))
    cpu_share.for_script()  # torch's threads: this script's share of the cores
    start = time.perf_counter()
    engine = engines.HFEngine(*load(world), batch_size=64)
    print(f"world {world.name()} loaded in {time.perf_counter() - start:.0f} s from {cache_dir(world)}")
    p = problems("test", 1, world=world)[0]
    print(f"a held-out problem: {p['question']}  (answer {p['answer']}, hard steps {p['hard_steps']})")
    [r] = tm.sample_rollouts(
        engine, [tm.initial_state(engine.tokenizer, p, world.caps())], 1, world.caps(), key=0
    )
    tm.print_rollout(r)
    report = {**warm_start_report(engine, world, args.n), **imitation_report(engine, world, args.n)}
    if world.uncertain:
        report["steps"] = step_report(engine, world, args.n)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
