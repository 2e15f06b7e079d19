"""Tests for benchmarks.py: every loader on a hand-written fixture in its
dataset's schema (read through the same `datasets` code path as the Hub data),
grading per kind, LiveCodeBench decoding and splitting, JSONL files and the
model-name registry."""

import json
import os

import pytest

import benchmarks
import config
import rewards
import thought_mdp as tm

FIX = os.path.join(os.path.dirname(__file__), "fixtures")


def load(name, fixture, **kw):
    return benchmarks.load_benchmark(name, data_files=os.path.join(FIX, fixture), **kw)


def test_numina_olympiads_keeps_graded_olympiad_rows_and_splits_train_from_eval():
    problems = load("numina-olympiads", "numina.jsonl", train_problems=2)
    train = load("numina-olympiads-train", "numina.jsonl", train_problems=2)
    everything = {p["answer"] for p in problems + train}
    # no proof, no cn_k12 row, no answer with a unit or a word (the authors' release's filter);
    # a negative answer stays, and a lost backslash is put back
    assert everything == {"55", "\\frac{1}{6}", "12", "-3", "\\frac{2}{3}"}
    assert len(train) == 2 and len(problems) == 3
    assert not {p["id"] for p in train} & {p["id"] for p in problems}


@pytest.mark.parametrize(
    "answer,kept",
    [
        ("55", True),
        ("\\frac{1}{6}", True),
        ("3\\sqrt{2}", True),
        ("A", True),
        ("-5", True),  # the release drops negatives (a leading "-"); we keep them
        ("x = 3", True),
        ("10 \\text{ cm}", False),
        ("12 cm", False),
        ("\\text{No}", False),
        ("n is odd", False),
        ("2 or 3", False),
        ("50\\%", False),
        ("{3", False),
        ("\\pi", False),  # no digit
        ("1" * 61, False),
    ],
)
def test_verifiable_answer_filter(answer, kept):
    assert benchmarks.verifiable_answer(answer) is kept


@pytest.mark.parametrize(
    "name,fixture,expected",
    [
        ("hmmt-nov-2025", "hmmt.jsonl", [("math", "1024"), ("math", "2\\sqrt{3}")]),
        ("math-level5", "math.jsonl", [("math", "7"), ("math", "\\frac{3}{4}")]),
        ("strategyqa", "strategyqa.jsonl", [("yesno", False), ("yesno", True)]),
        ("acereason-math", "acereason.jsonl", [("math", "2"), ("math", "\\frac{1}{2}")]),
        ("sciknoweval-chemistry", "sciknoweval.jsonl", [("choice", "B"), ("yesno", "Yes")]),
        ("sciknoweval-biology", "sciknoweval.jsonl", [("choice", "A")]),
        ("sciknoweval-materials", "sciknoweval.jsonl", [("choice", "A")]),
        ("sciknoweval-physics", "sciknoweval.jsonl", [("choice", "C")]),
        ("commonsenseqa", "commonsenseqa.jsonl", [("choice", "B"), ("choice", "C")]),
    ],
)
def test_loaders_on_fixtures(name, fixture, expected):
    problems = load(name, fixture, key=0)
    assert sorted((p["kind"], str(p["answer"])) for p in problems) == sorted((k, str(a)) for k, a in expected)
    for p in problems:
        assert p["question"] and p["id"]
        if p["kind"] == "choice":
            assert len(p["choices"]) >= 2
        assert tm.format_question(p)


def test_sampling_is_keyed_and_capped():
    a = load("commonsenseqa", "commonsenseqa.jsonl", n=1, key=3)
    b = load("commonsenseqa", "commonsenseqa.jsonl", n=1, key=3)
    assert len(a) == 1 and a == b
    assert len(benchmarks.load_benchmark("bundled", n=500)) == len(tm.load_problems())  # all when fewer


def test_missing_field_names_dataset_and_field(tmp_path):
    bad = tmp_path / "hmmt.jsonl"
    bad.write_text(json.dumps({"problem_idx": 1, "question": "2+2?", "answer": "4"}) + "\n")
    with pytest.raises(benchmarks.SchemaError, match=r"MathArena/hmmt_nov_2025.*'problem'"):
        benchmarks.load_benchmark("hmmt-nov-2025", data_files=str(bad))
    with pytest.raises(ValueError, match="unknown benchmark"):
        benchmarks.load_benchmark("gsm9k")


def test_unreachable_hub_dataset_fails_with_its_name(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="hmmt-nov-2025"):
        benchmarks.load_benchmark("hmmt-nov-2025")


def test_grading_each_kind_through_rewards_score():
    hmmt = load("hmmt-nov-2025", "hmmt.jsonl")
    side = next(p for p in hmmt if p["answer"] == "2\\sqrt{3}")
    assert rewards.score(side, "\\boxed{\\sqrt{12}}") == 1 and rewards.score(side, "\\boxed{3}") == 0
    chem = load("sciknoweval-chemistry", "sciknoweval.jsonl")
    mcq = next(p for p in chem if p["kind"] == "choice")
    assert rewards.score(mcq, "\\boxed{Oxygen}") == 1 and rewards.score(mcq, "\\boxed{A}") == 0
    tf = next(p for p in chem if p["kind"] == "yesno")
    assert rewards.score(tf, "\\boxed{yes}") == 1 and rewards.score(tf, "\\boxed{no}") == 0
    stra = load("strategyqa", "strategyqa.jsonl")
    assert rewards.score(next(p for p in stra if p["answer"] is False), "\\boxed{No}") == 1


def test_livecodebench_decoding_and_deterministic_split():
    problems = load("livecodebench", "livecodebench.jsonl")
    assert {p["id"] for p in problems} == {"lcb-abc001_a", "lcb-lc-9001"}  # the hard one is filtered out
    training = {p["id"]: p for p in load("livecodebench-train", "livecodebench.jsonl")}
    assert set(training) == {p["id"] for p in problems}  # one problem set (Sec. 5.3)
    double = next(p for p in problems if p["id"] == "lcb-abc001_a")
    both = double["tests"] + training["lcb-abc001_a"]["tests"]
    assert len(both) == 4  # 1 public + 3 hidden (base64/zlib/pickle)
    assert all(t["type"] == "stdin" for t in both)
    add = next(p for p in problems if p["id"] == "lcb-lc-9001")
    everything = add["tests"] + training["lcb-lc-9001"]["tests"]
    assert {(tuple(t["input"]), t["output"]) for t in everything} == {((1, 2), 3), ((5, 5), 10), ((-1, 1), 0)}
    assert all(t["type"] == "call" and t["fn_name"] == "addTwo" for t in everything)
    assert "class Solution" in add["question"]
    again = load("livecodebench", "livecodebench.jsonl")
    assert [p["tests"] for p in again] == [p["tests"] for p in problems]  # the split is deterministic
    train, held = benchmarks.split_tests("x", list(range(7)))
    assert sorted(train + held) == list(range(7)) and len(train) == 3 and not set(train) & set(held)
    solution = "```python\nclass Solution:\n    def addTwo(self, a, b):\n        return a + b\n```"
    assert rewards.score(add, solution) == 1.0
    assert rewards.score(double, "```python\nprint(2 * int(input()))\n```") == 1.0


def test_a_jsonl_file_is_a_benchmark(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"m{i}", "kind": "math", "question": f"{i}+1?", "answer": str(i + 1)}) + "\n"
            for i in range(5)
        )
    )
    assert [p["id"] for p in benchmarks.load_benchmark(str(path), n=10)] == [f"m{i}" for i in range(5)]
    assert benchmarks.load_benchmark(str(path), n=2, key=1) == benchmarks.load_benchmark(
        str(path), n=2, key=1
    )


def test_model_names_resolve_to_the_world_or_the_engine(monkeypatch):
    seen = []
    monkeypatch.setattr(benchmarks.warm_start, "load", lambda world, **kw: seen.append(world) or "M")
    monkeypatch.setattr(benchmarks.models, "load_model", lambda name, **kw: seen.append(name) or "E")
    assert benchmarks.load_model("tiny-world:horizon=8:hard_at=late") == "M"
    assert benchmarks.load_model("org/some-model") == "E"
    assert seen == [benchmarks.tiny_world.WorldConfig(horizon=8, hard_at="late"), "org/some-model"]
    assert benchmarks.own_model("tiny-world-train") is None and benchmarks.own_model("org/x") is None
    world = benchmarks.tiny_world.WorldConfig()
    assert benchmarks.default_caps("tiny-world").max_thoughts == world.horizon + 2
    assert benchmarks.default_caps("tiny-world:horizon=16").max_thoughts == 18
    assert benchmarks.default_caps("x").max_thoughts == 20


def test_a_bad_world_knob_is_refused_in_one_line(capsys):
    assert benchmarks.name_problem("tiny-world", "bundled", "tiny-world-train:horizon=8") is None
    assert "horizon must be 3-40" in benchmarks.name_problem("bundled", "tiny-world:horizon=99")
    with pytest.raises(SystemExit):
        config.parse_config(["--demo", "--data", "tiny-world-train:colour=red"])
    assert "bad world knob 'colour=red'" in capsys.readouterr().err


def test_livecodebench_trains_and_evaluates_on_tests_that_never_mix(tmp_path, capsys):
    """Sec. 5.3: training is rewarded on the training verifier's tests, evaluation on the
    held-out ones; no problem carries both, and --data livecodebench (the held-out tests)
    is refused for training."""
    import config

    held = {p["id"]: p for p in load("livecodebench", "livecodebench.jsonl")}
    train = {p["id"]: p for p in load("livecodebench-train", "livecodebench.jsonl")}
    for pid in held:
        assert "train_tests" not in held[pid] and "train_tests" not in train[pid]
        as_key = [json.dumps(t, sort_keys=True) for t in held[pid]["tests"]]
        assert held[pid]["tests"] and train[pid]["tests"]
        assert not set(as_key) & {json.dumps(t, sort_keys=True) for t in train[pid]["tests"]}
    with pytest.raises(SystemExit):
        config.parse_config(["--data", "livecodebench"])
    assert "training verifier" in capsys.readouterr().err
    assert config.parse_config(["--data", "livecodebench-train", "--eval-data", "livecodebench"])
    with pytest.raises(SystemExit):
        config.parse_config(["--eval-data", "livecodebench-train"])


def test_evaluation_keeps_livecodebench_problems_a_run_trained_on(monkeypatch):
    """The runs' training problems are left out of evaluation, except LiveCodeBench's:
    there the problem set is shared by design and the tests are what is held out."""
    import evaluate

    train = load("livecodebench-train", "livecodebench.jsonl")
    real = benchmarks.load_benchmark

    def from_fixtures(name, n, key, source="auto"):
        fixture = "livecodebench.jsonl" if name.startswith("livecodebench") else "commonsenseqa.jsonl"
        return real(name, n, key, data_files=os.path.join(FIX, fixture))

    csqa = load("commonsenseqa", "commonsenseqa.jsonl")
    monkeypatch.setattr(evaluate, "trained_on", lambda run: train + csqa)
    monkeypatch.setattr(evaluate.benchmarks, "load_benchmark", from_fixtures)
    suites = evaluate.load_suites(["livecodebench", "commonsenseqa"], 10, 0, ["a-run"])
    assert {p["id"] for p in suites["livecodebench"]} == {p["id"] for p in train}
    assert suites["commonsenseqa"] == []  # every one of them was trained on
