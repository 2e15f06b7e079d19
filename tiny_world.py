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
alone; warm_start.py builds its model (the policy every method starts from),
and compare_resets.py runs the comparison on it, over the knobs.

Paper map
  Sec. 3.1, Thm. 1   coverage p of the improvable state: the share of rollouts that
                     reach the hard step with a clean prefix              reached_clean()
  Sec. 3.2           improvable states = thoughts where a better action exists;
                     the oracle's reset index is the true first error          first_error()
  Sec. 4.1           the Thought MDP: one intermediate result per thought      make_problem(), thought_text()
  (ours)             noisy demonstrations, the warm start's teacher           demonstration()

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
  first weights; warm_start.imitation_report() says how close each build comes
  to the demonstrations it imitates), uncertain m and uncertain_acc a (many
  uncertain steps: instead of the multiplication, m additions of their own
  digit spread along the chain, the last at step H, each right with probability
  a at the sampling temperature; warm_start.step_report() measures it on the
  warm start's own rollouts; hard_at, hard_share and hard_acc are then unused),
  loc_scale (the warm start's localization examples, a multiple of the default
  count; 4 at H = 16 still left self-localization at chance,
  docs/classroom.md), max_epochs (the cap on the warm start's epochs),
  loc_uniform (the share of localization examples whose error sits at a uniform
  step) and layers (the Llama's depth). Self-localization here names where
  errors usually sit rather than reading the chain, and none of loc_scale,
  loc_uniform and layers changed that (warm_start.warm_start_report(),
  docs/classroom.md). Scripts take a world by name: `tiny-world` (the default
  config) or `tiny-world:horizon=16:hard_at=late:hard_share=0.3` (the knobs
  that differ); the training problems are `tiny-world-train[:...]`
  (benchmarks.py).

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
  python tiny_world.py                      # held-out problems, noisy demonstrations, their first errors
  python warm_start.py                      # build this world's model once, a sample chain, the report
  python warm_start.py --horizon 16 --hard-at late --hard-share 0.3   # another world, its own model
  python compare_resets.py --quick           # GRPO / RRPO / SRPO / ORACLE and controls on this world
  python srpo.py --demo                      # SRPO alone on this world, the README's first command
"""

import argparse
import dataclasses
import hashlib
import json
import math
import os
import random

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
VERSION = "v6"  # part of every cache key; bumped whenever the warm start's recipe changes (warm_start.py)
# the warm start's epochs (warm_start.build): the anneal's length, and the cap (the max_epochs knob)
ANNEAL_EPOCHS, MAX_EPOCHS = 2, 12


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
    # demonstrations are right with demo_acc(), the rate whose imitation samples a (warm_start.step_report())
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
    # the warm start's epochs at most (warm_start.build): a world whose loss stays above its target at the
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
        return ":".join([kind] + [f"{k}={v}" for k, v in self.changed().items()])

    def changed(self):
        """{knob: value} for the knobs away from their defaults."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v != getattr(WorldConfig, k)}


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


def add_flags(parser):
    """One command-line flag per knob of WorldConfig (--horizon, --hard-at, ...)."""
    tm.add_flags(parser, WorldConfig, choices={"hard_at": HARD_AT})


def from_flags(parser, args):
    """The world the parsed flags describe; a knob out of range is the parser's one-line error."""
    try:
        return check(WorldConfig(**tm.given(args, WorldConfig)))
    except ValueError as e:
        parser.error(str(e))


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


def main(argv=None):
    """A few held-out problems with a noisy demonstration each and its first error:
    the world without a model (warm_start.py builds and measures the model)."""
    parser = argparse.ArgumentParser(
        description="The classroom world without its model: problems, demonstrations and their "
        "first errors (python warm_start.py builds the model and measures it)"
    )
    parser.add_argument("--n", type=int, default=3, help="held-out problems to show")
    add_flags(parser)
    args = parser.parse_args(argv)
    world = from_flags(parser, args)
    rng, hard = random.Random(0), hard_pairs(world)
    print(f"world {world.name()}: {len(hard)} of the 80 multiplications hard")
    for p in problems("test", args.n, world=world):
        thoughts, first = demonstration(p, rng, hard, world)
        print(f"\n{p['question']}  (answer {p['answer']}, hard steps {p['hard_steps'] or 'none'})")
        for k, text in enumerate(thoughts, 1):
            mark = "  <- first error" if k == first else ""
            print(f"  {text.replace(tm.STOP, '')}{mark}")
        assert first == first_error(p, thoughts)  # the ground truth the oracle reset uses
    knobs = [f"--{k.replace('_', '-')} {v}" for k, v in world.changed().items()]  # warm_start.py's flags
    print(" ".join(["\nthe model of this world (built once, then measured): python warm_start.py", *knobs]))
    return world


if __name__ == "__main__":
    main()
