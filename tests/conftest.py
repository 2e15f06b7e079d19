"""Shared fixtures: a tiny real `transformers` model and a real byte-level BPE
tokenizer, both built offline in a second or two, and a copy of the model
trained to answer two bundled-style problems in the thought format."""

import os
import random

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub

import cpu_share  # noqa: E402

# pytest-xdist's workers (pytest.ini: -n) split the cores between them: each takes its share of
# torch's threads (cpu_share.py reads SRPO_THREADS), so no two workers' OpenMP threads fight
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    os.environ.setdefault("SRPO_THREADS", str(max(1, cpu_share.cores() // _workers)))
    torch.set_num_threads(int(os.environ["SRPO_THREADS"]))

import engines  # noqa: E402
import models  # noqa: E402
import thought_mdp as tm  # noqa: E402

# what the trained tiny model learns to say (the second one ends at EOS without an answer)
ANSWERED = {"id": "t-add", "kind": "math", "question": "What is 2 + 3?", "answer": "5"}
ANSWERED_RESPONSE = "Add the two numbers.</thought>\n2 + 3 = 5, so the answer is \\boxed{5}.</thought>"
UNANSWERED = {"id": "t-eos", "kind": "math", "question": "What is 4 + 4?", "answer": "8"}
UNANSWERED_RESPONSE = "Four and four.</thought>\nI am not sure."


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pytest.ini): one test process per core, at most 4 (each loads its own models)."""
    return max(1, min(4, cpu_share.cores()))


# the uncertain world of tests/test_tiny_world.py: m = 4 uncertain steps, each right 42% of the time,
# a 2-layer model warm-started for at most 4 epochs (about a minute on 2 cores; the sweep's 4-layer
# worlds take 2-4 minutes): the calibration under test holds there, 0.43 and 0.40 on two keys
UNCERTAIN_WORLD = dict(uncertain=4, uncertain_acc=0.42, max_epochs=4, layers=2)


def pytest_sessionstart(session):
    """With test processes (-n), this one builds the uncertain world first, with every core
    (about a minute on 2 cores, once per machine): a test process that built it would have one core."""
    asked = [a.split("::")[0] for a in session.config.args]  # the paths asked for (pytest.ini: tests)
    if (
        _workers == 1
        and getattr(session.config.option, "numprocesses", None)
        and "PYTEST_XDIST_WORKER" not in os.environ
        and any(os.path.isdir(a) or a.endswith("test_tiny_world.py") for a in asked)
    ):
        import tiny_world
        import warm_start

        warm_start.load(tiny_world.WorldConfig(**UNCERTAIN_WORLD))


# the two longest tests (a fresh machine builds an uncertain world in the first), started first
LONGEST = (
    "test_an_uncertain_world_samples_its_steps_at_the_asked_rate",
    "test_quick_comparison_every_method_learns",
)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """The tests that grade code run in one test process, one after the other: they check
    that no process of the sandbox's user outlives a grade, which another test process's
    grading at the same moment would break (pytest.ini: --dist loadgroup). The longest
    tests go first, so that the test processes do not end waiting on one of them."""
    for item in items:
        if item.module.__name__ in ("test_sandbox", "test_rewards") or "_code_" in item.name:
            item.add_marker(pytest.mark.xdist_group("sandbox"))
    items.sort(key=lambda item: item.name not in LONGEST)  # stable: the rest keep their order


def build_tokenizer():
    """A byte-level BPE tokenizer trained on thought-formatted text. Without the
    regex pre-split, merges cross punctuation and whitespace, so tokens such as
    `>\\n` appear and `</thought>` can end inside a token, as in real vocabularies;
    tokens are at most 4 characters long."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers import models as bpe_models
    from transformers import PreTrainedTokenizerFast

    corpus = [tm.ROLLOUT_PROMPT, ANSWERED_RESPONSE, UNANSWERED_RESPONSE] * 20
    corpus += [
        f"Step {i}: {i} + {i} = {2 * i}.</thought>\nNext step.</thought>\n\\boxed{{{i}}}" for i in range(50)
    ]
    bpe = Tokenizer(bpe_models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    bpe.decoder = decoders.ByteLevel()
    # short tokens, like a real vocabulary's
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=["<|pad|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        max_token_length=4,
    )
    bpe.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|pad|>")
    tok.chat_template = models.CHATML_TEMPLATE
    return tok


def build_model(tokenizer, key=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(key)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def train_to_say(model, tokenizer, pairs, steps=150, lr=3e-3):
    """Teach the model each (problem, response) pair: LM loss on the response tokens."""
    cfg = tm.ThoughtConfig()
    data = []
    for problem, response in pairs:
        prompt = tm.encode_prompt(tokenizer, problem, cfg)
        target = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        data.append((prompt, target))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        for prompt, target in data:
            ids = torch.tensor([prompt + target])  # (1, T)
            labels = ids.clone()
            labels[0, : len(prompt)] = -100
            loss = model(input_ids=ids, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer):
    return build_model(tiny_tokenizer)


@pytest.fixture(scope="session")
def trained_tiny(tiny_tokenizer):
    model = build_model(tiny_tokenizer, key=1)
    return train_to_say(
        model, tiny_tokenizer, [(ANSWERED, ANSWERED_RESPONSE), (UNANSWERED, UNANSWERED_RESPONSE)]
    )


def processes_with(marker):
    """Pids of the processes whose command line holds `marker` (Linux /proc)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if marker.encode() in fh.read():
                    found.append(pid)
        except OSError:
            continue
    return found


class ScriptedEngine:
    """Returns chosen thoughts: 'First step.', 'Second step.', then a final
    thought whose answer is right or wrong by the next scripted outcome (an outcome
    None: the rollout ends at once with EOS, a rollout with no thought); answers
    localization requests with the next scripted answer (\\boxed{2} once the
    script is used up) and verification requests with the next scripted verdict
    text. For testing bookkeeping only."""

    def __init__(self, tokenizer, outcomes=(), verdicts=(), localizations=()):
        self.tokenizer, self.outcomes, self.verdicts = tokenizer, list(outcomes), list(verdicts)
        self.localizations = list(localizations)
        self.eos_ids = {tokenizer.eos_token_id}
        self.localize_calls, self.calls = 0, []  # calls: the SamplingSettings of every generate call
        self.prompts = []  # the token-id prompts of every generate call

    def _completion(self, text):
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return engines.Completion(ids, self.tokenizer.decode(ids), "stop")

    def generate(self, prompts, params):
        self.calls.append(params)
        self.prompts.append([list(p) for p in prompts])
        out = []
        for p in prompts:
            text = self.tokenizer.decode(p)
            if "Decide whether the final answer" in text:
                out.append([self._completion(self.verdicts.pop(0))])
                continue
            if "incorrect reasoning chain" in text:
                self.localize_calls += 1
                out.append(
                    [self._completion(self.localizations.pop(0) if self.localizations else "\\boxed{2}")]
                )
                continue
            done = text.split("<|im_start|>assistant\n")[-1].count(tm.STOP)
            if done == 0 and self.outcomes and self.outcomes[0] is None:  # a rollout with no thought
                self.outcomes.pop(0)
                out.append([engines.Completion([self.tokenizer.eos_token_id], "", "stop")])
            elif done == 0:
                out.append([self._completion("First step.</thought>")])
            elif done == 1:
                out.append([self._completion("Second step.</thought>")])
            else:
                right = self.outcomes.pop(0) if self.outcomes else False
                out.append([self._completion(f"So \\boxed{{{5 if right else 6}}}.</thought>")])
        return out


class KeyedScriptedEngine(ScriptedEngine):
    """A ScriptedEngine driven by each row's own random key instead of a script consumed in
    call order: after the first thought, a call ends the rollout with probability
    1/2 (always at the fourth), and the final answer is right with probability
    p_right. Its rollouts differ in length and do not depend on how the calls were
    scheduled, as with a real engine. Localization requests get \\boxed{2}."""

    def __init__(self, tokenizer, p_right=0.5):
        super().__init__(tokenizer)
        self.p_right = p_right

    def generate(self, prompts, params):
        self.calls.append(params)
        out = []
        for p, key in zip(prompts, engines.row_keys(params, len(prompts))):
            text = self.tokenizer.decode(p)
            if "incorrect reasoning chain" in text:
                self.localize_calls += 1
                out.append([self._completion("\\boxed{2}")])
                continue
            rng, done = random.Random(key), text.split("<|im_start|>assistant\n")[-1].count(tm.STOP)
            if done == 0 or (done < 3 and rng.random() < 0.5):
                out.append([self._completion(f"Step {done + 1}.</thought>")])
            else:
                right = rng.random() < self.p_right
                out.append([self._completion(f"So \\boxed{{{5 if right else 6}}}.</thought>")])
        return out
