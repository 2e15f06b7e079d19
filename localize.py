"""localize.py: self-localization of the first erroneous thought (Sec. 4.2, App. D).

SRPO's reset index h* comes from the policy itself: the failed seed rollout is
shown back to the model as numbered steps, and the model names the step where
the reasoning first went wrong. The reset state is then the prefix before that
step, x* = (x_0, y~_{1:h*-1}). This stands in for CPI-CARO's credit oracle: the
rejection-sampling draw from G_{h,tau} of Algorithm 3.

Paper map
  Sec. 4.2, Alg. 2 line 5   h* <- self-localized index of the seed's first error    localize()
  App. D                    the localization prompt (our wording, same
                            instructions; steps rendered without </thought>)   LOCALIZE_PROMPT, render_chain()
  App. H                    localization tokens are counted (the paper asks
                            future runs to log them)                                Localization.n_tokens
  Sec. 5.3, Fig. 4          a stronger model as localizer, for comparison          localize(..., engine=other)
  Thought-ICS (companion)   the verifier's question "is this answer right?" (our
                            wording), answered \\boxed{yes} or \\boxed{no}      VERIFY_PROMPT, parse_verdict()

Symbols
  y~_1..y~_{H_s}   -> rollout.thought_texts (the failed seed)
  h*               -> Localization.index, 1-based
  path             -> Localization.path: boxed | boxed_zero | phrase | fallback

Choices, and why
  * The localizer's settings are the authors' release's (Ankur-Samanta/SRPO,
    training/thought_ics_agent_loop.py); the paper states none of them. It
    samples at temperature 0.3 with up to 4,096 new tokens, so that a model
    may reason before it boxes a step (LocalizeConfig; `--localize-temperature`,
    `--localize-max-tokens` in the training scripts).
  * The answer is read in the release's order (read_step): the last
    `\\boxed{` with balanced braces, if it holds a whole number in 1..H_s
    ("boxed"; 0, the model's "no error", reads as step 1: "boxed_zero");
    else the last "Step N" / "step N" phrase anywhere in the answer, if N is
    in 1..H_s ("phrase"); else the fallback. Every path is counted.
  * The fallback is step 1 (`--localize-fallback first`, the release's): an
    empty prefix, so the suffix group is G fresh rollouts from x_0. Ours
    before the alignment, `--localize-fallback uniform`, drew h* uniformly,
    so that a failed parse became RRPO's random reset.
  * A request longer than its cap (LocalizeConfig.for_caps: a whole rollout's
    length) keeps the instructions, the problem, the first steps and the last
    one, and leaves out the middle of the chain (fitted_turn), never the start.
  * Any engine can localize: the policy's own (self-localization) or another
    model's. The classroom reports and Thought-ICS keep the settings they were
    measured with (BEFORE_RELEASE: greedy, 64 tokens, uniform fallback).
  * The verification prompt of the companion work (Iterative Correction
    Sampling of Thoughts) sits here beside the localization prompt because it
    shows the chain the same way; thought_ics.py runs the loop that uses it.

Run it
  python localize.py               # bundled SmolLM2-135M: a failed rollout and where the model puts its error
  python localize.py --model PATH_OR_HUB_ID
"""

import argparse
import random
import re
from dataclasses import dataclass

import engines
import models
import rewards
import thought_mdp as tm

LOCALIZE_PROMPT = """Below is your earlier solution to a problem. Your task is to find the first step in it that is wrong.

Problem: {question}

Your incorrect reasoning chain:
{chain}

The final answer of this chain is wrong, so at least one step contains an error. Look for the step where the error started: the step where a key decision or action sent the reasoning off course, not the later step where the failure became visible. A misread problem, an assumption without justification or a flaw in logic can look harmless for several steps before it produces the wrong answer. A step is wrong if its claims cannot be justified from the problem statement and the earlier, correct steps alone. Name the step where the error originated, not its symptom.

Do NOT solve the problem again. Your ONLY task is to give the number of that originating step.

Requirements:
- Choose exactly ONE step number, from 1 to {n_steps}.
- Stop at the first step you cannot justify.
- Your response MUST end with \\boxed{{N}} on a line of its own, where N is the number (counting from 1) of the first wrong step in the chain above, NOT the answer to the problem. Write nothing after \\boxed{{N}}."""  # noqa: E501 (the prompt's lines are its words)


# The companion work's autonomous verifier (Thought-ICS, thought_ics.py), in our words
VERIFY_PROMPT = """Below is your earlier solution to a problem, written as numbered steps. Check it.

Problem: {question}

Your reasoning chain:
{chain}

Decide whether the final answer of this chain is correct. Check each step against the problem statement and the steps before it; do not trust a step because it sounds confident.

Requirements:
- Do NOT write a new solution.
- Your response MUST end with \\boxed{{yes}} if the final answer is correct, or \\boxed{{no}} if it is not. Write nothing after it."""  # noqa: E501


FALLBACKS = ("first", "uniform")  # h* when no step can be read: step 1 (the release's), or a uniform draw
PATHS = ("boxed", "boxed_zero", "phrase", "fallback")  # how h* was read (read_step)


@dataclass
class LocalizeConfig:
    temperature: float = 0.3  # the localizer's sampling temperature (the authors' release; 0 = greedy)
    top_p: float = 1.0
    max_tokens: int = 4096  # tokens of the localizer's answer (the authors' release)
    max_prompt_tokens: int = 4096  # longer requests elide the chain's middle steps (fitted_turn)
    fallback: str = "first"  # FALLBACKS

    @classmethod
    def for_caps(cls, tcfg, **settings):
        """The localizer's caps for rollouts under ThoughtConfig `tcfg`: the request may
        be as long as a whole rollout (prompt cap + response cap); vllm_engine's window
        holds it and the answer. `settings` are other fields (temperature, ...)."""
        return cls(max_prompt_tokens=tcfg.max_prompt_tokens + tcfg.max_response_tokens, **settings)


# The settings before the alignment with the authors' release: a greedy 64-token answer and a
# uniform fallback. The classroom world's reports and Thought-ICS were measured with them.
BEFORE_RELEASE = dict(temperature=0.0, max_tokens=64, fallback="uniform")


@dataclass
class Localization:
    index: int  # h*, 1-based, in 1..H_s
    parsed: bool  # True when h* was read from the answer, False when it is the fallback
    text: str  # the localizer's answer
    n_tokens: int  # tokens the localizer generated (App. H)
    path: str = "boxed"  # PATHS: how h* was read


def render_chain(thought_texts):
    """`Step 1: ...` lines, one per thought, with the </thought> markers removed."""
    return "\n".join(step_lines(thought_texts))


def step_lines(thought_texts):
    return [f"Step {h}: {text.replace(tm.STOP, '').strip()}" for h, text in enumerate(thought_texts, 1)]


def user_turn_ids(tokenizer, content):
    """Token ids of `content` as the user turn of a new chat."""
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def fitted_turn(tokenizer, template, rollout, max_prompt_tokens, **fields):
    """Token ids of `template` (with {question} and {chain}) as a user turn, at most
    max_prompt_tokens long. An over-long chain loses its middle steps, replaced by
    one line that says which: the chat header, the instructions, the problem, the
    first steps (where first errors sit, Fig. 4a) and the last step (the answer)
    stay, and every step keeps its number."""
    lines = step_lines(rollout.thought_texts)
    question = tm.format_question(rollout.problem)

    def turn(kept):  # the first `kept` steps, the elision line, the last step
        chain = (
            lines
            if kept is None
            else lines[:kept]
            + [f"[Steps {kept + 1} to {len(lines) - 1} are left out here for length.]", lines[-1]]
        )
        return user_turn_ids(tokenizer, template.format(question=question, chain="\n".join(chain), **fields))

    ids = turn(None)
    if len(ids) <= max_prompt_tokens:
        return ids
    lo, hi = 0, len(lines) - 2  # the most first steps that fit beside the last one: binary search
    if len(lines) < 2 or len(turn(0)) > max_prompt_tokens:
        raise ValueError(
            f"a {len(ids)}-token request for problem {rollout.problem.get('id')} does not fit "
            f"{max_prompt_tokens} tokens even with its middle steps left out"
        )
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if len(turn(mid)) <= max_prompt_tokens else (lo, mid - 1)
    return turn(lo)


def localization_prompt(tokenizer, rollout, cfg=LocalizeConfig()):
    """Token ids of the localization request, as a user turn of a new chat."""
    return fitted_turn(
        tokenizer, LOCALIZE_PROMPT, rollout, cfg.max_prompt_tokens, n_steps=len(rollout.thought_texts)
    )


def verification_prompt(tokenizer, rollout, max_prompt_tokens=4096):
    """Token ids of the verification request, as a user turn of a new chat."""
    return fitted_turn(tokenizer, VERIFY_PROMPT, rollout, max_prompt_tokens)


def parse_verdict(text):
    """True (judged correct), False (judged wrong) or None, from the last \\boxed{}
    holding yes/no (or true/false, correct/incorrect: rewards.yes_no's words)."""
    for content in rewards.boxed_contents(text):
        verdict = rewards.yes_no(content)
        if verdict is not None:
            return verdict
    return None


def last_box_opening(text):
    """The content of the last `\\boxed{` of text up to its balancing brace; None when
    there is no such opening or its braces never balance (a cut-off answer)."""
    opens = [m.end() for m in re.finditer(r"\\boxed\{", text)]
    if not opens:
        return None
    depth, i = 1, opens[-1]
    while i < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[opens[-1] : i - 1] if depth == 0 else None


def read_step(text, n_steps):
    """(h*, path) read from a localizer's answer in the authors' release's order:
    the last \\boxed{} holding a whole number in 1..n_steps (0 reads as 1); else the
    last "Step N" phrase with N in 1..n_steps; else (None, "fallback")."""
    text = text or ""
    boxed = last_box_opening(text)
    if boxed is not None and re.fullmatch(r"\s*[+-]?\d+\s*", boxed):
        k = int(boxed)
        if k == 0:  # "no wrong step": the release clamps it to step 1
            return 1, "boxed_zero"
        if 1 <= k <= n_steps:
            return k, "boxed"
    phrases = re.findall(r"[Ss]tep\s+(\d+)", text)
    if phrases and 1 <= int(phrases[-1]) <= n_steps:
        return int(phrases[-1]), "phrase"
    return None, "fallback"


def parse_step(text, n_steps):
    """The step read_step finds in `text`; None when it finds none."""
    return read_step(text, n_steps)[0]


def settings(cfg, key):
    """The localizer's sampling settings, one answer per request."""
    return engines.SamplingSettings(cfg.temperature, cfg.top_p, cfg.max_tokens, (), 1, key)


def read(answer, rollout, key, fallback="first"):
    """The Localization in `answer` (a Completion) for `rollout`; when no step can be
    read, h* is step 1 (fallback "first") or a uniform draw from the answer's own
    random key ("uniform")."""
    n_steps = len(rollout.thought_ids)
    assert n_steps >= 1, "a rollout to localize has at least one thought"
    assert fallback in FALLBACKS, fallback
    h, path = read_step(answer.text, n_steps)
    if h is None:
        h = 1 if fallback == "first" else random.Random(key).randint(1, n_steps)
    return Localization(h, path != "fallback", answer.text, len(answer.token_ids), path)


def localize(engine, rollouts, cfg=LocalizeConfig(), key=0):
    """Alg. 2, line 5: h* for each failed rollout, from one batched engine call.
    `engine` is the policy's engine (self-localization) or another model's. Request
    i draws from derive_key(key, i), its fallback too."""
    prompts = [localization_prompt(engine.tokenizer, r, cfg) for r in rollouts]
    answers = engine.generate(prompts, settings(cfg, key))
    return [
        read(answer, r, engines.derive_key(key, i), cfg.fallback)
        for i, (r, [answer]) in enumerate(zip(rollouts, answers))
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description="Localize the first error of a failed bundled rollout.")
    parser.add_argument(
        "--model", default="smollm2-135m", help="the policy: bundled short name, Hub id or local folder"
    )
    parser.add_argument(
        "--localizer", default=None, help="another model to localize with (default: the policy itself)"
    )
    parser.add_argument("--tries", type=int, default=8, help="rollouts to sample while looking for a failure")
    parser.add_argument(
        "--run-key", "--seed", type=int, default=0, help="the random key (--seed: its old name, deprecated)"
    )
    args = parser.parse_args(argv)
    cfg = tm.DEMO_CAPS
    model, tokenizer = models.load_model(args.model)
    engine = engines.HFEngine(model, tokenizer)
    judge = engine if args.localizer is None else engines.HFEngine(*models.load_model(args.localizer))
    problems = [p for p in tm.load_problems() if p["kind"] == "math"]
    states = [tm.initial_state(tokenizer, p, cfg) for p in problems[: args.tries]]
    failed = [r for r in tm.sample_rollouts(engine, states, 1, cfg, args.run_key) if r.reward < 1]
    if not failed:
        print(f"all {args.tries} rollouts were correct; nothing to localize")
        return None
    seed_rollout = max(failed, key=lambda r: len(r.thought_ids))  # the most steps to choose from
    print(f"Q: {seed_rollout.problem['question']}  (gold {seed_rollout.problem['answer']!r})")
    tm.print_rollout(seed_rollout)
    [loc] = localize(judge, [seed_rollout], key=args.run_key)
    print(f"\nlocalizer answer ({loc.n_tokens} tokens): {loc.text.strip()[:300]!r}")
    how = f"read from the answer ({loc.path})" if loc.parsed else "fallback: no step could be read; step 1"
    print(f"h* = {loc.index} ({how}); the reset state keeps thoughts 1..{loc.index - 1}")
    return loc


if __name__ == "__main__":
    main()
