"""Tests for evaluate.py: every loader on a hand-written fixture in its dataset's
schema (read through the same `datasets` code path as the Hub data), grading
per kind, LiveCodeBench decoding and splitting, tables, figures, and resuming
an interrupted evaluation."""

import json
import os

import pytest

import evaluate as ev
import rewards
import thought_mdp as tm
from conftest import ANSWERED, UNANSWERED

FIX = os.path.join(os.path.dirname(__file__), "fixtures")


def load(name, fixture, **kw):
    return ev.load_benchmark(name, data_files=os.path.join(FIX, fixture), **kw)


def test_numina_olympiads_keeps_graded_olympiad_rows_and_splits_train_from_eval():
    problems = load("numina-olympiads", "numina.jsonl", train_problems=2)
    train = load("numina-olympiads-train", "numina.jsonl", train_problems=2)
    everything = {p["answer"] for p in problems + train}
    assert everything == {"55", "\\frac{1}{6}", "12"}  # no proof, no cn_k12 row
    assert len(train) == 2 and len(problems) == 1
    assert not {p["id"] for p in train} & {p["id"] for p in problems}


@pytest.mark.parametrize("name,fixture,expected", [
    ("hmmt-nov-2025", "hmmt.jsonl", [("math", "1024"), ("math", "2\\sqrt{3}")]),
    ("math-level5", "math.jsonl", [("math", "7"), ("math", "\\frac{3}{4}")]),
    ("strategyqa", "strategyqa.jsonl", [("yesno", False), ("yesno", True)]),
    ("acereason-math", "acereason.jsonl", [("math", "2"), ("math", "\\frac{1}{2}")]),
    ("sciknoweval-chemistry", "sciknoweval.jsonl", [("choice", "B"), ("yesno", "Yes")]),
    ("sciknoweval-biology", "sciknoweval.jsonl", [("choice", "A")]),
    ("sciknoweval-materials", "sciknoweval.jsonl", [("choice", "A")]),
    ("sciknoweval-physics", "sciknoweval.jsonl", [("choice", "C")]),
    ("commonsenseqa", "commonsenseqa.jsonl", [("choice", "B"), ("choice", "C")]),
])
def test_loaders_on_fixtures(name, fixture, expected):
    problems = load(name, fixture, seed=0)
    assert sorted((p["kind"], str(p["answer"])) for p in problems) == sorted((k, str(a)) for k, a in expected)
    for p in problems:
        assert p["question"] and p["id"]
        if p["kind"] == "choice":
            assert len(p["choices"]) >= 2
        assert tm.format_question(p)


def test_sampling_is_seeded_and_capped():
    a = load("commonsenseqa", "commonsenseqa.jsonl", n=1, seed=3)
    b = load("commonsenseqa", "commonsenseqa.jsonl", n=1, seed=3)
    assert len(a) == 1 and a == b
    assert len(ev.load_benchmark("bundled", n=500)) == len(tm.load_problems())  # all when fewer


def test_missing_field_names_dataset_and_field(tmp_path):
    bad = tmp_path / "hmmt.jsonl"
    bad.write_text(json.dumps({"problem_idx": 1, "question": "2+2?", "answer": "4"}) + "\n")
    with pytest.raises(ev.SchemaError, match=r"MathArena/hmmt_nov_2025.*'problem'"):
        ev.load_benchmark("hmmt-nov-2025", data_files=str(bad))
    with pytest.raises(ValueError, match="unknown benchmark"):
        ev.load_benchmark("gsm9k")


def test_unreachable_hub_dataset_fails_with_its_name(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="hmmt-nov-2025"):
        ev.load_benchmark("hmmt-nov-2025")


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
    double = next(p for p in problems if p["id"] == "lcb-abc001_a")
    assert len(double["tests"]) + len(double["train_tests"]) == 4  # 1 public + 3 hidden (base64/zlib/pickle)
    assert all(t["type"] == "stdin" for t in double["tests"] + double["train_tests"])
    add = next(p for p in problems if p["id"] == "lcb-lc-9001")
    everything = add["tests"] + add["train_tests"]
    assert {(tuple(t["input"]), t["output"]) for t in everything} == {((1, 2), 3), ((5, 5), 10), ((-1, 1), 0)}
    assert all(t["type"] == "call" and t["fn_name"] == "addTwo" for t in everything)
    assert "class Solution" in add["question"]
    again = load("livecodebench", "livecodebench.jsonl")
    assert [p["tests"] for p in again] == [p["tests"] for p in problems]  # the split is deterministic
    train, held = ev.split_tests("x", list(range(7)))
    assert sorted(train + held) == list(range(7)) and len(train) == 3 and not set(train) & set(held)
    solution = "```python\nclass Solution:\n    def addTwo(self, a, b):\n        return a + b\n```"
    assert rewards.score(add, solution) == 1.0
    assert rewards.score(double, "```python\nprint(2 * int(input()))\n```") == 1.0


def test_table3_bolds_the_best_mean_and_reports_sd():
    results = {"grpo": [{"hmmt-nov-2025": 0.10, "math-level5": 0.60}, {"hmmt-nov-2025": 0.20, "math-level5": 0.62}],
               "srpo": [{"hmmt-nov-2025": 0.30, "math-level5": 0.50}, {"hmmt-nov-2025": 0.40, "math-level5": 0.52}]}
    md, csv = ev.table3(results, base={"hmmt-nov-2025": 0.05, "math-level5": 0.55},
                        benchmarks=["hmmt-nov-2025", "math-level5"])
    lines = md.splitlines()
    assert lines[0] == "| Method | hmmt | lvl5 |"
    assert "| Base† | 5.0 | 55.0 |" in lines
    assert "| GRPO | 15.0 ± 7.1 | **61.0 ± 1.4** |" in lines
    assert "| SRPO | **35.0 ± 7.1** | 51.0 ± 1.4 |" in lines
    assert "SRPO,35.0+-7.1,51.0+-1.4" in csv.splitlines()


def synthetic_run(folder, method, seed, with_reference=False):
    os.makedirs(folder)
    with open(folder / "config.json", "w") as fh:
        json.dump({"method": method, "seed": seed}, fh)
    with open(folder / "metrics.jsonl", "w") as fh:
        for step in range(3):
            m = {"step": step, "tokens/base": 800, "tokens/suffix": 0 if method == "grpo" else 300,
                 "tokens/localize": 20 if method == "srpo" else 0, "time/gen_s": 10.0, "time/localize_s": 1.0,
                 "time/step_s": 15.0, "rollouts/generated": 16, "signal/ratio": 1.2 + 0.1 * step,
                 "reset/suffix_pass_rate": 0.1 * step}
            if method != "grpo":
                m["reset/indices"], m["reset/seed_lengths"] = [1, 2 + step], [4, 5]
                m["reset/records"] = [{"h": 2, "H_s": 4, "h_ref": 3 if with_reference else None, "suffix_pass": 0.5},
                                      {"h": 4, "H_s": 5, "h_ref": 2 if with_reference else None, "suffix_pass": 0.0}]
            fh.write(json.dumps(m) + "\n")
    with open(folder / "eval.jsonl", "w") as fh:
        for step in (1, 2, 3):
            fh.write(json.dumps({"step": step, "pass_rate": 0.1 * step + 0.01 * seed, "n": 8}) + "\n")
    return str(folder)


def test_compute_tables_and_figures_from_run_folders(tmp_path):
    runs = [synthetic_run(tmp_path / f"{m}-{s}", m, s, with_reference=(m == "srpo"))
            for m in ("grpo", "rrpo", "srpo") for s in (0, 1)]
    written = ev.report(runs, str(tmp_path / "out"), {"grpo": [{"bundled": 0.2}], "srpo": [{"bundled": 0.3}]},
                        {"bundled": 0.1})
    for name in ("table3.md", "table3.csv", "table_compute.md", "table_compute.csv", "fig4a_reset_indices.png",
                 "fig7_signal.png", "fig3_validation.png", "fig4bcd_localization.png"):
        assert name in written and (tmp_path / "out" / name).stat().st_size > 40
    compute = (tmp_path / "out" / "table_compute.md").read_text()
    assert "| SRPO | 0.0125 | 0.0083 | 0.0008 | 3300 | 60 | 68.8 | 110.0 |" in compute  # 45 s, 30 s, 3 s; 1100/16; 3300/30 s
    assert "| SRPO | 1.00 | 1.00 | 1.38 | 1.40 | 1.38 |" in compute  # normalised to GRPO


def test_interrupted_evaluation_resumes_where_it_stopped(trained_tiny, tiny_tokenizer, tmp_path):
    problems = [ANSWERED, UNANSWERED, dict(ANSWERED, id="t-add-again")]
    engine = tm.HFEngine(trained_tiny, tiny_tokenizer)
    path = str(tmp_path / "eval" / "tiny.jsonl")
    cfg = tm.ThoughtConfig(temperature=0.0, max_thoughts=4, max_thought_tokens=32)
    full = ev.evaluate(engine, problems, path, cfg)
    assert full == pytest.approx(2 / 3)
    lines = open(path).read().splitlines()
    with open(path, "w") as fh:  # a crash after the first item, mid-way through writing the second
        fh.write(lines[0] + "\n" + lines[1][:10])
    calls = []
    original = tm.sample_rollouts

    def counting(engine, states, n, cfg, seed=0, **kw):
        calls.append(len(states))
        return original(engine, states, n, cfg, seed, **kw)

    tm.sample_rollouts, saved = counting, tm.sample_rollouts
    try:
        resumed = ev.evaluate(engine, problems, path, cfg)
    finally:
        tm.sample_rollouts = saved
    assert calls == [2] and resumed == full


def test_evaluate_script_on_the_bundled_model(tmp_path, capsys):
    base, runs = ev.main(["--model", "smollm2-135m", "--benchmarks", "bundled", "--n", "2", "--out", str(tmp_path),
                          "--max-thoughts", "2", "--max-thought-tokens", "24"])
    assert set(base) == {"bundled"} and 0.0 <= base["bundled"] <= 1.0 and runs == {}
    assert "| BASE |" in capsys.readouterr().out
    assert len(open(tmp_path / "base" / "bundled.jsonl").read().splitlines()) == 2


def test_load_run_takes_a_full_finetune_without_touching_the_base(tiny_tokenizer, tmp_path):
    import torch

    from conftest import build_model
    base = build_model(tiny_tokenizer, seed=0)
    trained = build_model(tiny_tokenizer, seed=5)  # stands for the weights a --full-finetune run saved
    (tmp_path / "checkpoint").mkdir()
    torch.save(trained.state_dict(), tmp_path / "checkpoint" / "trainable.pt")
    before = {k: v.clone() for k, v in base.state_dict().items()}
    policy = ev.load_run(base, str(tmp_path))
    for k, v in trained.state_dict().items():
        assert torch.equal(policy.state_dict()[k], v)
        assert torch.equal(base.state_dict()[k], before[k])
    with pytest.raises(FileNotFoundError, match="not a finished training run"):
        ev.load_run(base, str(tmp_path / "nothing"))
