"""thought_mdp.py: the Thought MDP of Sec. 4.1 on a real language model.

A state is the prompt x_0 plus the thoughts so far, an action is one thought
(tokens up to and including the one that completes `</thought>`), the reward is
the verified final answer at the end (rewards.py). A reset returns to a thought
prefix of a rollout and resamples the rest of the same assistant turn.

Paper map
  Sec. 4.1         Thought MDP: x_0 ~ mu, thought y~_h ~ pi(. | x_0, y~_{1:h-1}),
                   sparse terminal reward r_H in {0, 1}            sample_rollouts(), Rollout
  Sec. 4.2         reset state x* = (x_0, y~_{1:h*-1}); G iid
                   continuations from it                            reset_state()
  App. C, Tab. 5   caps: 20 thoughts, 256 tokens a thought, 4096 response and
                   2048 prompt tokens; temperature 0.7, top-p 0.95, no top-k   ThoughtConfig
  App. D           the rollout prompt (our wording, same instructions), as plain
                   text (raw, the authors' release) or a chat turn   ROLLOUT_PROMPT, encode_prompt()
  (ours)           one --flag per config field, help from its comment      add_flags(), given()

The engines that sample the thoughts (HF transformers, vLLM) and model loading
live in engines.py, vllm_engine.py and models.py; this file only needs their interface.

Symbols
  x_0                 -> Rollout.prompt_ids   list[int]: the prompt as plain text (raw), or a chat
                                              user turn + assistant header (chat)
  y~_h                -> Rollout.thought_ids[h-1]  list[int], the sampled ids of thought h
  H_s                 -> len(Rollout.thought_ids)
  h*                  -> Rollout.reset_index  (None for a rollout from x_0)
  x*                  -> State(prompt_ids, thought_ids[:h*-1])
  r_H                 -> Rollout.reward

Token exactness (the rule for stop strings)
  Thoughts are stored as the token ids that were sampled, never re-tokenized
  from text; the next thought, a reset state and the loss all use these ids. A
  thought ends with the token whose decoding completes `</thought>`, and that
  token belongs to the thought whole, with any characters it carries past the
  stop string (a token like `>\\n` ends the thought and keeps its newline). A
  thought's text is decode(its ids), never truncated. The same rule decides
  boundaries whether a thought is one engine call (engines.CallDecoder with
  ThoughtTracker.feed(), the paper's way, and the vLLM engine's in vllm_engine.py) or
  one continuous generation that watches for boundaries (engines.Decoder with
  ThoughtTracker.push(), same distribution, no re-encoding of the prefix for
  every thought). The rule, not the engine, decides: a call that the engine
  ends where the rule sees no boundary leaves the thought open for the next call.

A rollout finishes when a closed thought holds a complete \\boxed{...}
("answer"), at the end-of-sequence token ("eos"; the EOS id is kept as the last
sampled token), at the response-token cap ("max_tokens") or at the thought cap
("max_thoughts"). A thought that reaches 256 tokens without `</thought>` is
closed there and the next thought starts, as a new per-thought call would.
A new thought starts only while a whole one (max_thought_tokens) still fits
under the response cap, else the rollout ends ("max_tokens"): the authors'
release checks this before each thought, so no thought is cut by the total
cap (`--cut-last-thought`: the thought that crosses the cap is cut there).
Only a first thought from a state with less room than that is cut.

Deviations from the paper
  * Prompts longer than max_prompt_tokens are refused with an error instead of
    truncated: a truncated problem is a different problem.

Run it
  python thought_mdp.py                 # bundled SmolLM2-135M on CPU: a few rollouts, thought by thought
  python thought_mdp.py --benchmark     # thought-structured vs plain generate throughput
  python thought_mdp.py --model PATH_OR_HUB_ID --problems 3 --n 2 --max-thoughts 20 --max-thought-tokens 256
"""

import argparse
import dataclasses
import inspect
import json
import os
import re
import time
from dataclasses import dataclass, field

import torch

import cpu_share
import engines
import models
import release_graders
import rewards

STOP = "</thought>"
BUNDLED_PROBLEMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "bundled_problems.jsonl")


@dataclass
class ThoughtConfig:
    # App. C, Table 5: the Thought MDP's caps and sampling settings
    max_thoughts: int = 20  # H, thoughts per rollout
    max_thought_tokens: int = 256  # tokens per thought
    # tokens per response (all thoughts); the paper's 4,096 (the release's configs set 5,120 = 20 x 256)
    max_response_tokens: int = 4096
    max_prompt_tokens: int = 2048  # tokens of the templated prompt x_0
    temperature: float = 0.7  # sampling temperature (0 = greedy)
    top_p: float = 0.95  # nucleus sampling; top-k is off
    # let the last thought run into the response cap and be cut there (the default, as the authors'
    # release: a thought starts only while a whole one still fits the response cap)
    cut_last_thought: bool = False
    # raw: the prompt as plain text, the question as given, no chat template (the authors' release: the
    # paper's runs; the scripts' default for Hub models); chat: a user turn of the model's chat template
    prompt_format: str = "chat"
    # the reward's verifier: ours (rewards.py: math-verify's equivalence, boxed answers) or paper
    # (release_graders.py: the authors' release's extraction and MATH string normalisation)
    grader: str = "ours"


PROMPT_FORMATS = ("raw", "chat")  # how x_0 is written (encode_prompt)
GRADERS = {"ours": rewards.score, "paper": release_graders.score}  # r_H's verifier (ThoughtConfig.grader)

# ThoughtConfig fields added since runs were first saved, with the value those runs ran with
BEFORE = dict(cut_last_thought=True, prompt_format="chat", grader="ours")


# The small caps of this file's and localize.py's CPU demos on the bundled model
DEMO_CAPS = ThoughtConfig(max_thoughts=6, max_thought_tokens=64)


def field_help(cls):
    """Each field's comment in the source of the dataclass `cls`, its --help text: the
    comment at the end of the field's line, else the comment line right above it."""
    helps, above = {}, None
    for line in inspect.getsource(cls).splitlines():
        field = re.match(r"\s+(\w+)\s*:[^#]*?(?:#\s*(.+))?$", line)
        if line.strip().startswith("#"):
            above = line.strip()[1:].strip()
            continue
        if field and (field.group(2) or above):
            helps[field.group(1)] = (field.group(2) or above).strip()
        above = None
    return helps


def add_flags(parser, cls, defaults=None, skip=(), choices=None):
    """One typed --flag per field of the dataclass `cls`, the field's comment as its help.
    Flags default to None, so that `given()` returns only what the command line set;
    `defaults` (an instance) supplies the defaults shown in --help; `choices` maps a
    field to the values its flag accepts."""
    comments = field_help(cls)
    defaults = defaults or cls()
    for f in dataclasses.fields(cls):
        if f.name in skip or f.type not in (bool, int, float, str):
            continue
        text = f"{comments.get(f.name, f.name)} (default: {getattr(defaults, f.name)!r})".replace("%", "%%")
        flag = "--" + f.name.replace("_", "-")
        if f.type is bool:
            parser.add_argument(flag, action="store_true", default=None, help=text)
        else:
            parser.add_argument(
                flag, type=f.type, default=None, help=text, choices=(choices or {}).get(f.name)
            )


def given(args, cls):
    """The fields of the dataclass `cls` that were set on the command line (argparse namespace or dict)."""
    values = args if isinstance(args, dict) else vars(args)
    return {f.name: values[f.name] for f in dataclasses.fields(cls) if values.get(f.name) is not None}


# -----------------------------------------------------------------------------
# App. D: the rollout prompt, in our words

ROLLOUT_PROMPT = """Solve the problem below one reasoning step at a time.

Do not try to solve it all at once. Look at the steps taken so far, decide what the single next step should be, write it out clearly, and finish that step with </thought>.

Make every step one complete, self-contained thought: a single observation, calculation or deduction that
- moves the solution forward,
- carries real reasoning (no filler such as "let me think", no restating of the problem),
- follows logically from the earlier steps.

When a step reaches the final answer, write it as \\boxed{{answer}} and end that step with </thought>.

Q: {question}"""  # noqa: E501 (the prompt's lines are its words)


def format_question(problem, prompt_format="chat"):
    """The question text of a problem: with its options and our per-kind instruction
    (chat), or as given, its options listed and nothing added (raw, as the authors'
    release, whose datasets carry the options inside the question)."""
    question = problem["question"]
    options = "\n".join(
        f"{letter}) {text}" for letter, text in zip("ABCDEFGHIJ", problem.get("choices") or [])
    )
    if prompt_format == "raw":
        return f"{question}\n{options}" if options and problem["kind"] == "choice" else question
    if problem["kind"] == "choice" and options:
        question += f"\n\nOptions:\n{options}\n\nAnswer with the letter of the correct option."
    elif problem["kind"] == "yesno":
        question += "\n\nAnswer yes or no."
    elif problem["kind"] == "code":
        question += "\n\nWrite the complete Python solution in one ```python code block."
    return question


def encode_prompt(tokenizer, problem, cfg):
    """x_0: the rollout prompt. chat: a user turn through the model's chat template,
    ending with the assistant header so that thoughts continue the assistant turn;
    raw: the prompt's text and a newline, tokenized as it is (the tokenizer's own
    special tokens, e.g. a BOS, added), thoughts continuing right after it."""
    if cfg.prompt_format == "raw":
        text = ROLLOUT_PROMPT.format(question=format_question(problem, "raw")) + "\n"
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        return check_prompt_length(ids, problem, cfg)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template; the Thought MDP prompt is a chat user turn")
    messages = [{"role": "user", "content": ROLLOUT_PROMPT.format(question=format_question(problem))}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return check_prompt_length(tokenizer(text, add_special_tokens=False)["input_ids"], problem, cfg)


def check_prompt_length(ids, problem, cfg):
    """x_0's ids, refused when longer than max_prompt_tokens (a truncated problem is another problem)."""
    if len(ids) > cfg.max_prompt_tokens:
        raise ValueError(
            f"prompt of problem {problem.get('id')} has {len(ids)} tokens "
            f"> max_prompt_tokens={cfg.max_prompt_tokens}"
        )
    return ids


def load_problems(path=BUNDLED_PROBLEMS):
    """Problems from a JSONL file (the bundled set by default), checked for the fields rewards.score needs."""
    problems = []
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            p = json.loads(line)
            missing = [k for k in ("id", "kind", "question") if k not in p]
            missing += ["tests"] if p.get("kind") == "code" and not p.get("tests") else []
            missing += (
                ["answer"] if p.get("kind") in ("math", "choice", "yesno") and "answer" not in p else []
            )
            if missing:
                raise ValueError(f"{path}:{line_no}: problem is missing {missing}")
            problems.append(p)
    return problems


# -----------------------------------------------------------------------------
# The thought boundary rule, shared by both sampling paths


class ThoughtTracker:
    """Splits one sample's token stream into thoughts and decides when the rollout
    ends: the rule of the module docstring, shared by both sampling paths."""

    def __init__(self, tokenizer, eos_ids, cfg, n_prev_thoughts=0, n_prev_tokens=0):
        self.tokenizer, self.eos_ids, self.cfg = tokenizer, eos_ids, cfg
        self.n_prev_thoughts, self.n_prev_tokens = n_prev_thoughts, n_prev_tokens
        self.thoughts = [[]]  # own thoughts; the last one is open until closed
        self.n_tokens, self.done, self.finish_reason = 0, False, None

    @property
    def ids(self):
        return [t for thought in self.thoughts for t in thought]

    @property
    def budget(self):
        """Tokens this sample may still generate."""
        return self.cfg.max_response_tokens - self.n_prev_tokens - self.n_tokens

    def room_for_a_thought(self):
        """May another thought start? While a whole one still fits under the response cap
        (the authors' release), or while any token does with --cut-last-thought."""
        return self.budget >= (1 if self.cfg.cut_last_thought else self.cfg.max_thought_tokens)

    def call(self):
        """One engine call of the thought-by-thought path samples the open thought (to
        its end): (stop strings, cap)."""
        return (STOP,), self.cfg.max_thought_tokens - len(self.thoughts[-1])

    def feed(self, completion):
        """One thought call's Completion (engines.CallDecoder, vllm_engine.VLLMDecoder): the
        call stopped where the thought closes (or at the response cap), by the same
        rule as push(), or earlier (see below)."""
        ids, before = completion.token_ids, len(self.thoughts)
        for k, token in enumerate(ids):
            self.push(token)
            if self.done or len(self.thoughts) > before:
                assert k == len(ids) - 1 or self.budget <= 0, (
                    "the engine's stop rule and the thought boundary rule disagree"
                )
                return
        # The engine stopped where this rule sees no boundary. vLLM did once in our tests (a lone
        # UTF-8 continuation byte returned as "stop"; probably a character split across the
        # previous thought's last token). The thought stays open; the next call continues it.
        assert ids, "an engine call returned no tokens"

    def push(self, token_id):
        thought = self.thoughts[-1]
        thought.append(token_id)
        self.n_tokens += 1
        if token_id in self.eos_ids:
            closed = "eos"
        elif engines.stop_completed(self.tokenizer, thought, STOP):
            closed = "stop"
        elif len(thought) >= self.cfg.max_thought_tokens or self.budget <= 0:
            closed = "cap"
        else:
            return False
        # a thought closed: does the rollout end here?
        if rewards.last_boxed(self.tokenizer.decode(thought, skip_special_tokens=True)) is not None:
            self.finish_reason = "answer"
        elif closed == "eos":
            self.finish_reason = "eos"
        elif self.budget <= 0 or not self.room_for_a_thought():
            self.finish_reason = "max_tokens"
        elif self.n_prev_thoughts + len(self.thoughts) >= self.cfg.max_thoughts:
            self.finish_reason = "max_thoughts"
        else:
            self.thoughts.append([])
            return False
        self.done = True
        return True


# -----------------------------------------------------------------------------
# States, rollouts and resets


@dataclass
class State:
    """A Thought-MDP state: the problem, x_0's ids and the thoughts so far."""

    problem: dict
    prompt_ids: list
    thought_ids: list = field(default_factory=list)  # list of id lists
    thought_texts: list = field(default_factory=list)
    reset_index: int = None  # h* when this state is a reset state

    @property
    def ids(self):
        return self.prompt_ids + [t for thought in self.thought_ids for t in thought]


@dataclass
class Rollout:
    problem: dict
    prompt_ids: list  # x_0
    thought_ids: list  # all thoughts, the reset prefix's included
    thought_texts: list
    finish_reason: str  # answer | eos | max_tokens | max_thoughts
    reward: float
    answer: str = None  # the last \boxed{} of the response
    reset_index: int = None  # h*: thoughts 1..h*-1 are the shared prefix; None for a fresh rollout

    @property
    def n_prefix_thoughts(self):
        return 0 if self.reset_index is None else self.reset_index - 1

    @property
    def response_ids(self):
        return [t for thought in self.thought_ids for t in thought]

    @property
    def own_mask(self):
        """1 on the tokens this rollout sampled, 0 on the shared prefix it was reset to."""
        n_prefix = self.n_prefix_tokens
        return [0] * n_prefix + [1] * (len(self.response_ids) - n_prefix)

    @property
    def n_prefix_tokens(self):
        return sum(len(t) for t in self.thought_ids[: self.n_prefix_thoughts])

    @property
    def n_own_tokens(self):
        return len(self.response_ids) - self.n_prefix_tokens

    @property
    def text(self):
        return "".join(self.thought_texts)

    def to_dict(self):
        d = dataclasses.asdict(self)
        d.update(
            n_prompt_tokens=len(self.prompt_ids),
            n_prefix_tokens=self.n_prefix_tokens,
            n_own_tokens=self.n_own_tokens,
            n_thoughts=len(self.thought_ids),
        )
        return d


def initial_state(tokenizer, problem, cfg):
    return State(problem, encode_prompt(tokenizer, problem, cfg))


def reset_state(rollout, h):
    """Sec. 4.2: x* = (x_0, y~_{1:h-1}), the same assistant turn, h in 1..H_s."""
    assert 1 <= h <= len(rollout.thought_ids), f"reset index {h} outside 1..{len(rollout.thought_ids)}"
    return State(
        rollout.problem, rollout.prompt_ids, rollout.thought_ids[: h - 1], rollout.thought_texts[: h - 1], h
    )


def sampling_rows(engine, states, n, cfg):
    """(state, tracker) for n samples of each state, state-major; a row's prefix is state.ids."""
    return [
        (
            s,
            ThoughtTracker(
                engine.tokenizer, engine.eos_ids, cfg, len(s.thought_ids), len(s.ids) - len(s.prompt_ids)
            ),
        )
        for s in states
        for _ in range(n)
    ]


def to_rollout(state, tracker, tokenizer):
    """The finished sample of `tracker`, continued from `state`, as a scored Rollout."""
    assert tracker.done, "every sample ends with a finish reason"
    own = [thought for thought in tracker.thoughts if thought]
    texts = [tokenizer.decode(thought, skip_special_tokens=True) for thought in own]
    text = "".join(state.thought_texts + texts)
    return Rollout(
        problem=state.problem,
        prompt_ids=state.prompt_ids,
        thought_ids=state.thought_ids + own,
        thought_texts=state.thought_texts + texts,
        finish_reason=tracker.finish_reason,
        reward=GRADERS[tracker.cfg.grader](state.problem, text),
        answer=rewards.last_boxed(text),
        reset_index=state.reset_index,
    )


def decoder_for(engine, thought_by_thought=False):
    """The engine's own decoder (HF: one continuous generation per sample, the tracker
    closing thoughts on the fly), or rounds of one engine call per thought, the
    paper's way, for any engine (vLLM) and on request."""
    if thought_by_thought or not hasattr(engine, "decoder"):
        return engines.CallDecoder(engine)
    return engine.decoder()


def sample_rollouts(engine, states, n, cfg, key=0, first=0, thought_by_thought=False):
    """n iid rollouts from each state (fresh or reset), in state-major order; row i
    draws from derive_key(key, first + i), so rows drawn in several calls (first =
    the rows drawn before) are the rows one call would draw. Both decoders give the
    same ids and boundaries."""
    rows = sampling_rows(engine, states, n, cfg)
    keys = [engines.derive_key(key, first + i) for i in range(len(rows))]
    engines.run_to_end(
        decoder_for(engine, thought_by_thought),
        [s.ids for s, _ in rows],
        [t for _, t in rows],
        cfg.temperature,
        cfg.top_p,
        keys,
    )
    return [to_rollout(s, t, engine.tokenizer) for s, t in rows]


# -----------------------------------------------------------------------------
# Demo and throughput benchmark


def print_rollout(r, prefix=""):
    print(
        f"{prefix}reward {r.reward:.2f}  finish {r.finish_reason}  answer {r.answer!r}  "
        f"{len(r.thought_ids)} thoughts, {len(r.response_ids)} tokens"
        + (f"  (reset at h*={r.reset_index})" if r.reset_index else "")
    )
    for h, text in enumerate(r.thought_texts, 1):
        tag = "  shared" if h <= r.n_prefix_thoughts else ""
        print(f"{prefix}  [{h}{tag}] {text.strip()[:300]!r}")


def benchmark(engine, states, n, cfg, key=0):
    """Tokens per second of thought-structured sampling (n rollouts per state)
    against plain batched `generate` of the same prompts and the same number of
    tokens (every row the mean rollout length, EOS ignored), batch_size rows at a time."""
    rewards.warm_up()  # grading is part of a rollout; the grader's start-up is not
    start = time.perf_counter()
    rollouts = sample_rollouts(engine, states, n, cfg, key)
    t_thought = time.perf_counter() - start
    tokens = sum(len(r.response_ids) for r in rollouts)
    rows = [s.ids for s in states for _ in range(n)]
    length = -(-tokens // len(rows))  # ceil: the same token count as the thought run
    plain_tokens, start = 0, time.perf_counter()
    with torch.no_grad():
        for b in range(0, len(rows), engine.batch_size):
            batch = rows[b : b + engine.batch_size]
            ids, mask = engines.pad_batch(batch, engine.pad_id)  # (B, T) left-padded
            width = ids.shape[1]
            out = engine.model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=True,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                top_k=0,
                max_new_tokens=length,
                min_new_tokens=length,
                pad_token_id=engine.pad_id,
            )
            plain_tokens += len(batch) * (out.shape[1] - width)
    t_plain = time.perf_counter() - start
    thought_rate, plain_rate = tokens / t_thought, plain_tokens / t_plain
    return dict(
        thought_tok_s=round(thought_rate, 1),
        plain_tok_s=round(plain_rate, 1),
        ratio=round(thought_rate / plain_rate, 3),
        thought_tokens=tokens,
        plain_tokens=plain_tokens,
        samples=len(rollouts),
        batch_size=engine.batch_size,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description="Sample thought-by-thought rollouts of bundled problems.")
    parser.add_argument("--model", default="smollm2-135m", help="bundled short name, Hub id or local folder")
    parser.add_argument("--problems", type=int, default=2, help="how many bundled problems")
    parser.add_argument("--n", type=int, default=2, help="rollouts per problem")
    parser.add_argument(
        "--run-key", "--seed", type=int, default=0, help="the random key (--seed: its old name, deprecated)"
    )
    parser.add_argument(
        "--benchmark", action="store_true", help="measure thought vs plain generate throughput"
    )
    # --max-thoughts, --temperature, ... (demo caps; the paper's are the dataclass's)
    add_flags(parser, ThoughtConfig, DEMO_CAPS)
    args = parser.parse_args(argv)
    cfg = dataclasses.replace(DEMO_CAPS, **given(args, ThoughtConfig))
    cpu_share.for_script()  # torch's threads: this script's share of the cores
    model, tokenizer = models.load_model(args.model)
    engine = engines.HFEngine(model, tokenizer)
    problems = [p for p in load_problems() if p["kind"] == "math"][: args.problems]
    if args.benchmark:  # a miniature training step: 16 problems of every kind x 4 rollouts, 8 rows at a time
        engine.batch_size = 8
        states = [initial_state(tokenizer, p, cfg) for p in load_problems()[::3]]
        result = benchmark(engine, states, 4, cfg, args.run_key)
        print(json.dumps(result, indent=2))
        return result
    states = [initial_state(tokenizer, p, cfg) for p in problems]
    rollouts = sample_rollouts(engine, states, args.n, cfg, args.run_key)
    for r in rollouts:
        print(f"\nQ: {r.problem['question']}  (gold {r.problem.get('answer')!r})")
        print_rollout(r)
    first = rollouts[0]
    if len(first.thought_ids) >= 2:
        h = len(first.thought_ids)
        print(
            f"\nreset the first rollout to h* = {h} (keep thoughts 1..{h - 1}) "
            f"and resample {args.n} suffixes:"
        )
        for r in sample_rollouts(
            engine, [reset_state(first, h)], args.n, cfg, engines.derive_key(args.run_key, 1)
        ):
            print_rollout(r, "  ")
    return rollouts


if __name__ == "__main__":
    main()
