"""warm_start.py: the classroom world's model (tiny_world.py): a tokenizer trained on
the world's own text and a ~1M-parameter Llama warm-started on noisy
demonstrations, localization examples and verification examples, built once per
world and cached; and the measurements every comparison starts from (coverage,
pass rates, self-localization, each step's success rate).

The paper's methods start from an instruct model that reasons, localizes its
own errors and judges answers, each imperfectly. Here that model is built: it
imitates the world's demonstrations, whose errors the knobs place
(tiny_world.demonstration), and learns to name a chain's first error and to
judge an answer from labels that are right only as often as the knobs say.

Paper map
  Sec. 3.1, Thm. 1   coverage p of the improvable state on the warm start's own
                     rollouts, and where their first errors sit                 warm_start_report()
  Sec. 4.2, App. D   self-localization, warm-started to be imperfect          localization_examples()
  Thought-ICS        an autonomous verifier, warm-started to be imperfect      verification_examples()
  (companion work)
  (ours)             each step's success rate at the sampling temperature      step_report()
  (ours)             how closely the model imitates its demonstrations         imitation_report()

Symbols
  demos       -> (problem, demonstrated chain): the world's noisy demonstrations
  loc, checks -> (chain as a Rollout, "\\boxed{k}") and (chain, "\\boxed{yes}" or "\\boxed{no}")
  seqs        -> (prompt ids, answer ids + EOS): the training sequences, the loss on the answer only
  bs          -> sequences an optimizer step: 64, times 8 / H for chains longer than 8 steps
  PEAK_LR     -> AdamW's rate until the loss (mean of the last 100 steps) falls below LOSS_TARGET
  tw          -> tiny_world.py: the world's chains, knobs (WorldConfig) and ground truth

Pieces
  * a byte-level BPE tokenizer trained here on the world's own text (the fixed
    instructions of the prompts merge into a few long tokens, so sequences stay
    short; no token crosses `</thought>`) and a ~1M-parameter Llama (a real
    `transformers` class);
  * the warm start on noisy demonstrations, on localization examples and on
    verification examples (is this answer right? \\boxed{yes} or \\boxed{no},
    for thought_ics.py); built on first use (about 2 minutes on 2 cores) and
    cached under ~/.cache/srpo-resets/tiny-world-v6-<hash of the knobs>
    (tiny_world.cache_dir), so a changed knob never reuses a stale model;
  * warm_start_report() measures it (pass rate greedy and at the training
    temperature, coverage, depth of first errors, self-localization against a
    random step and the most common one), imitation_report() how close it
    comes to its demonstrations, step_report() each step's success rate.

Deviations, and why
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

Run it
  python warm_start.py                              # build once (about 2 minutes), a sample chain, the report
  python warm_start.py --horizon 16 --hard-at late --hard-share 0.3  # another world: its own model and report
  python warm_start.py --warm-key 1                   # the same world warm-started from another random key
  python warm_start.py --uncertain 4 --uncertain-acc 0.42  # 4 uncertain steps, each right 42% at T = 0.7
"""

import argparse
import collections
import dataclasses
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
import tiny_world as tw

# the schedule (build()): the peak rate until the loss falls below the target, then a cosine
# anneal of tw.ANNEAL_EPOCHS, at tw.WorldConfig.max_epochs at the latest
PEAK_LR, LOSS_TARGET = 3e-3, 0.3


def chain_rollout(problem, thoughts, reward=0.0):
    """A written chain of thoughts as a Rollout (token ids are not needed to render it for a
    localizer or a verifier, so each thought gets a placeholder)."""
    return tm.Rollout(problem, [], [[0]] * len(thoughts), thoughts, "answer", reward)


def localization_examples(rng, hard, n, world=tw.WorldConfig()):
    """(failed rollout, label) pairs: a chain with its first error at a known step,
    a share 1 - loc_uniform (half by default) with the demonstrations' own noise (so
    errors sit where the policy makes them, mostly on hard multiplications) and the
    rest at a uniform step; labelled correctly with probability loc_acc and one step off otherwise
    (kept inside the chain, so at its first and last step a slip may land right)."""
    out = []
    while len(out) < n:
        p = tw.make_problem(rng, len(out), "loc", world, hard)
        if rng.random() < 1 - world.loc_uniform:
            thoughts, k = tw.demonstration(p, rng, hard, world)
            if k is None:
                continue
        else:
            k = rng.randrange(1, len(p["chain"]) + 1)
            thoughts, _ = tw.demonstration(p, rng, hard, world, error_at=k)
        label = k if rng.random() < world.loc_acc else min(max(1, k + rng.choice([-1, 1])), len(thoughts))
        rollout = chain_rollout(p, thoughts)
        out.append((rollout, f"\\boxed{{{label}}}"))
    return out


def verification_examples(rng, hard, n, world=tw.WorldConfig()):
    """(answer to check, verdict) pairs for thought_ics.py's autonomous verifier:
    noisy demonstrations, judged by whether their answer is right, with the
    verdict wrong with probability 1 - verify_acc."""
    out = []
    for i in range(n):
        p = tw.make_problem(rng, i, "verify", world, hard)
        thoughts, first = tw.demonstration(p, rng, hard, world)
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
    world=tw.WorldConfig(),
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

    out_dir = out_dir or tw.cache_dir(world)
    key = engines.derive_key(tw.WORLD_SEED, world.warm_key) if world.warm_key else tw.WORLD_SEED
    rng = random.Random(key)
    torch.manual_seed(key)
    hard = tw.hard_pairs(world)
    cfg = tm.ThoughtConfig()
    n_demos, n_loc, n_verify = example_counts(world, n_demos, n_loc, n_verify)
    scale = horizon_scale(world)
    demos = []
    for i in range(n_demos):
        p = tw.make_problem(rng, i, "warm", world, hard)
        demos.append((p, "".join(tw.demonstration(p, rng, hard, world)[0])))
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
    while anneal_at is None or step < anneal_at + tw.ANNEAL_EPOCHS * per_epoch:
        rng.shuffle(seqs)
        for b in range(0, per_epoch * bs, bs):
            if anneal_at is None and (
                (len(recent) == 100 and np.mean(recent) < LOSS_TARGET)
                or step >= (world.max_epochs - tw.ANNEAL_EPOCHS) * per_epoch
            ):
                anneal_at = step
            if anneal_at is None:
                lr = PEAK_LR * min(1.0, (step + 1) / (per_epoch // 2))
            else:
                done = (step - anneal_at) / (tw.ANNEAL_EPOCHS * per_epoch)
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


def load(world=tw.WorldConfig(), dtype=None, device=None):
    """The world's warm-started model, built on first use and cached under its key."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tw.cache_dir(world)

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


def warm_start_report(engine, world=tw.WorldConfig(), n=128, key=1):
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
    states = [tm.initial_state(engine.tokenizer, p, caps) for p in tw.problems("test", n, world=world)]
    rollouts = tm.sample_rollouts(engine, states, 2, caps, key=key)
    greedy = tm.sample_rollouts(engine, states, 1, dataclasses.replace(caps, temperature=0.0))
    failed = [r for r in rollouts if r.reward < 1]
    truth = [tw.first_error(r.problem, r.thought_texts) for r in failed]
    greedy_localizer = localize.LocalizeConfig(**localize.BEFORE_RELEASE)  # as the reports were measured
    found = [loc.index for loc in localize.localize(engine, failed, greedy_localizer)]
    reached = [tw.reached_clean(r.problem, r.thought_texts) for r in rollouts]
    # chains whose first error sits at a uniform step (no label noise): what reading the chain
    # buys where the usual place of errors does not help (chance: 1 / H)
    rng, hard = random.Random(key), tw.hard_pairs(world)
    uniform, at = [], []
    for p in tw.problems("test", n, key=key, world=world):
        at.append(rng.randint(1, world.horizon))
        thoughts, _ = tw.demonstration(p, rng, hard, world, error_at=at[-1])
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


def imitation_report(engine, world=tw.WorldConfig(), n=128, key=2):
    """How closely the warm start imitates its demonstrations: the pass rate of its
    samples at temperature 1 without a nucleus (the demonstrations' own distribution,
    if imitated exactly) on n held-out chains x 2, against the demonstrations' rate
    on the same chains (easy_acc per step, hard_acc on a hard multiplication, along
    the true chain). The build's target: a capability fixed by the world's knobs,
    not by the float kernels that trained it."""
    caps = dataclasses.replace(world.caps(), temperature=1.0, top_p=1.0)
    chains = tw.problems("test", n, world=world)
    states = [tm.initial_state(engine.tokenizer, p, caps) for p in chains]
    rollouts = tm.sample_rollouts(engine, states, 2, caps, key=key)
    hard_acc = tw.demo_acc(world) if world.uncertain else world.hard_acc
    expected = [
        hard_acc ** len(p["hard_steps"]) * world.easy_acc ** (world.horizon - len(p["hard_steps"]))
        for p in chains
    ]
    return {
        "pass_rate_t1": float(np.mean([r.reward for r in rollouts])),
        "demonstrations": float(np.mean(expected)),
    }


def step_report(engine, world=tw.WorldConfig(), n=128, samples=4, key=3):
    """Each step's success rate at the sampling temperature, on the warm start's own
    rollouts (n held-out chains x `samples`): at step k, the share of rollouts whose
    prefix is clean up to k - 1 that state step k right. `uncertain_acc` pools the
    multiplications (with the uncertain knob on, what was asked as uncertain_acc),
    `easy_acc` the other steps; `per_step` is the rate at each step with at least 20
    clean arrivals; `first_errors` counts where the failed rollouts' first errors sit."""
    caps = world.caps()
    chains = tw.problems("test", n, world=world)
    states = [tm.initial_state(engine.tokenizer, p, caps) for p in chains]
    rollouts = tm.sample_rollouts(engine, states, samples, caps, key=key)
    arrived, right = np.zeros(world.horizon + 1), np.zeros(world.horizon + 1)  # by step (1-based)
    hard_arrived = hard_right = easy_arrived = easy_right = 0
    first_errors = {}
    for r in rollouts:
        first = tw.first_error(r.problem, r.thought_texts)
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
        "uncertain_steps": tw.uncertain_steps(world),
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
    tw.add_flags(parser)
    args = parser.parse_args(argv)
    world = tw.from_flags(parser, args)
    cpu_share.for_script()  # torch's threads: this script's share of the cores
    start = time.perf_counter()
    engine = engines.HFEngine(*load(world), batch_size=64)
    print(f"world {world.name()} loaded in {time.perf_counter() - start:.0f} s from {tw.cache_dir(world)}")
    p = tw.problems("test", 1, world=world)[0]
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
