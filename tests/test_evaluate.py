"""Tests for evaluate.py and runs.py: tables, figures, resuming an interrupted
evaluation, the evaluation script, and loading a trained run's policy."""

import json
import os

import numpy as np
import pytest
from conftest import ANSWERED, UNANSWERED

import config
import engines
import evaluate as ev
import report
import runs
import thought_mdp as tm


def test_table3_bolds_the_best_mean_and_reports_sd():
    results = {
        "grpo": [{"hmmt-nov-2025": 0.10, "math-level5": 0.60}, {"hmmt-nov-2025": 0.20, "math-level5": 0.62}],
        "srpo": [{"hmmt-nov-2025": 0.30, "math-level5": 0.50}, {"hmmt-nov-2025": 0.40, "math-level5": 0.52}],
    }
    md, csv = report.table3(
        results, base={"hmmt-nov-2025": 0.05, "math-level5": 0.55}, columns=["hmmt-nov-2025", "math-level5"]
    )
    lines = md.splitlines()
    assert lines[0] == "| Method | hmmt | lvl5 |"
    assert "| Base† | 5.0 | 55.0 |" in lines
    assert "| GRPO | 15.0 ± 7.1 | **61.0 ± 1.4** |" in lines
    assert "| SRPO | **35.0 ± 7.1** | 51.0 ± 1.4 |" in lines
    assert "SRPO,35.0+-7.1,51.0+-1.4" in csv.splitlines()


def synthetic_run(folder, method, key, with_reference=False):
    os.makedirs(folder)
    with open(folder / "config.json", "w") as fh:
        json.dump({"method": method, "run_key": key}, fh)
    with open(folder / "metrics.jsonl", "w") as fh:
        for step in range(3):
            m = {
                "step": step,
                "tokens/base": 800,
                "tokens/suffix": 0 if method == "grpo" else 300,
                "tokens/localize": 20 if method == "srpo" else 0,
                "time/gen_s": 10.0,
                "time/localize_s": 1.0,
                "time/step_s": 15.0,
                "rollouts/generated": 16,
                "signal/ratio": 1.2 + 0.1 * step,
                "reset/suffix_pass_rate": 0.1 * step,
            }
            if method != "grpo":
                m["reset/indices"], m["reset/seed_lengths"] = [1, 2 + step], [4, 5]
                m["reset/records"] = [
                    {"h": 2, "H_s": 4, "h_ref": 3 if with_reference else None, "suffix_pass": 0.5},
                    {"h": 4, "H_s": 5, "h_ref": 2 if with_reference else None, "suffix_pass": 0.0},
                ]
            fh.write(json.dumps(m) + "\n")
    with open(folder / "eval.jsonl", "w") as fh:
        for step in (1, 2, 3):
            fh.write(json.dumps({"step": step, "pass_rate": 0.1 * step + 0.01 * key, "n": 8}) + "\n")
    return str(folder)


def test_compute_tables_and_figures_from_run_folders(tmp_path):
    runs = [
        synthetic_run(tmp_path / f"{m}-{s}", m, s, with_reference=(m == "srpo"))
        for m in ("grpo", "rrpo", "srpo")
        for s in (0, 1)
    ]
    written = report.report(
        runs,
        str(tmp_path / "out"),
        {"grpo": [{"bundled": 0.2}], "srpo": [{"bundled": 0.3}]},
        {"bundled": 0.1},
    )
    for name in (
        "table3.md",
        "table3.csv",
        "table_compute.md",
        "table_compute.csv",
        "fig4a_reset_indices.png",
        "fig7_signal.png",
        "fig3_validation.png",
        "fig4bcd_localization.png",
    ):
        assert name in written and (tmp_path / "out" / name).stat().st_size > 40
    compute = (tmp_path / "out" / "table_compute.md").read_text()
    # 45 s, 30 s, 3 s; 1100/16; 3300/30 s
    assert "| SRPO | 0.0125 | 0.0083 | 0.0008 | 3300 | 60 | 68.8 | 110.0 |" in compute
    assert "| SRPO | 1.00 | 1.00 | 1.38 | 1.40 | 1.38 |" in compute  # normalised to GRPO


def test_interrupted_evaluation_resumes_where_it_stopped(trained_tiny, tiny_tokenizer, tmp_path):
    problems = [ANSWERED, UNANSWERED, dict(ANSWERED, id="t-add-again")]
    engine = engines.HFEngine(trained_tiny, tiny_tokenizer)
    path = str(tmp_path / "eval" / "tiny.jsonl")
    cfg = tm.ThoughtConfig(temperature=0.0, max_thoughts=4, max_thought_tokens=32)
    full = ev.evaluate(engine, problems, path, cfg)
    assert full == pytest.approx(2 / 3)
    lines = open(path).read().splitlines()
    with open(path, "w") as fh:  # a crash after the first item, mid-way through writing the second
        fh.write(lines[0] + "\n" + lines[1][:10])
    calls = []
    original = tm.sample_rollouts

    def counting(engine, states, n, cfg, key=0, **kw):
        calls.append(len(states))
        return original(engine, states, n, cfg, key, **kw)

    tm.sample_rollouts, saved = counting, tm.sample_rollouts
    try:
        resumed = ev.evaluate(engine, problems, path, cfg)
    finally:
        tm.sample_rollouts = saved
    assert calls == [2] and resumed == full
    calls.clear()
    tm.sample_rollouts = counting
    try:  # records of other weights (another fingerprint) are stale: every item runs again
        ev.evaluate(engine, problems, path, cfg, fingerprint="other weights")
        ev.evaluate(engine, problems, path, cfg, fingerprint="other weights")
    finally:
        tm.sample_rollouts = saved
    assert calls == [3]


def test_pass_at_k_is_the_unbiased_estimator():
    assert ev.pass_at_k(5, 2, 1) == pytest.approx(0.4)  # k = 1: the fraction right
    assert ev.pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2) / C(5,2)
    assert ev.pass_at_k(5, 0, 3) == 0.0 and ev.pass_at_k(4, 3, 2) == 1.0  # no right one; no 2 wrong ones
    # it is the mean, over every k-subset of the n samples, of "the subset holds a right one"
    import itertools

    right = [1, 0, 0, 1, 0, 0]
    subsets = list(itertools.combinations(right, 3))
    assert ev.pass_at_k(6, 2, 3) == pytest.approx(sum(map(any, subsets)) / len(subsets))


def test_pass_at_k_samples_each_item_n_times(trained_tiny, tiny_tokenizer, tmp_path, capsys):
    problems = [ANSWERED, UNANSWERED, dict(ANSWERED, id="t-add-again")]
    engine = engines.HFEngine(trained_tiny, tiny_tokenizer)
    cfg = tm.ThoughtConfig(temperature=1.0, max_thoughts=4, max_thought_tokens=32)
    path = str(tmp_path / "tiny-pass2.jsonl")
    score = ev.evaluate(engine, problems, path, cfg, k=2, n=4, key=5)
    records = [json.loads(line) for line in open(path)]
    assert [len(r["rewards"]) for r in records] == [4, 4, 4]
    for r in records:
        assert r["reward"] == pytest.approx(ev.pass_at_k(4, sum(x >= 1 for x in r["rewards"]), 2))
    assert score == pytest.approx(np.mean([r["reward"] for r in records]))
    for argv, message in [
        (["--pass-at-k", "4", "--samples", "2"], "--samples 2 must be at least --pass-at-k 4"),
        (["--samples", "3"], "--samples is for --pass-at-k"),
    ]:
        with pytest.raises(SystemExit):
            ev.main(argv)
        assert message in capsys.readouterr().err


def test_evaluate_script_on_the_bundled_model(tmp_path, capsys):
    base, runs = ev.main(
        [
            "--model",
            "smollm2-135m",
            "--benchmarks",
            "bundled",
            "--n",
            "2",
            "--out",
            str(tmp_path),
            "--max-thoughts",
            "2",
            "--max-thought-tokens",
            "24",
        ]
    )
    assert set(base) == {"bundled"} and 0.0 <= base["bundled"] <= 1.0 and runs == {}
    assert "| BASE |" in capsys.readouterr().out
    records = [json.loads(line) for line in open(tmp_path / "base" / "bundled.jsonl")]
    assert len(records) == 2
    # both verifiers on the same rollouts: ours is the table's reward, the release's a second table
    assert all(r["reward"] == r["reward_ours"] and r["reward_paper"] in (0.0, 1.0) for r in records)
    paper = (tmp_path / "table3_paper_grader.md").read_text()
    assert "| BASE |" in paper
    assert ev.grader_column(
        str(tmp_path / "base" / "bundled.jsonl"), [{"id": r["id"]} for r in records], "paper"
    ) == (sum(r["reward_paper"] for r in records) / 2)


def test_load_policy_takes_a_full_finetune_without_touching_the_base(tiny_tokenizer, tmp_path):
    import torch
    from conftest import build_model

    base = build_model(tiny_tokenizer, key=0)
    trained = build_model(tiny_tokenizer, key=5)  # stands for the weights a --full-finetune run saved
    (tmp_path / "checkpoint").mkdir()
    torch.save(trained.state_dict(), tmp_path / "checkpoint" / "trainable.pt")
    before = {k: v.clone() for k, v in base.state_dict().items()}
    policy = runs.load_policy(base, str(tmp_path))
    for k, v in trained.state_dict().items():
        assert torch.equal(policy.state_dict()[k], v)
        assert torch.equal(base.state_dict()[k], before[k])
    with pytest.raises(FileNotFoundError, match="not a finished training run"):
        runs.load_policy(base, str(tmp_path / "nothing"))


def test_no_run_is_scored_on_the_problems_it_trained_on(tmp_path, capsys):
    """Runs with other run keys draw other training problems from the same data; the
    evaluation leaves out every problem any evaluated run trained on (read from its
    config.json and checkpoint), for every row, so none is scored on its training set."""
    import dataclasses

    import grpo

    data = tmp_path / "problems.jsonl"
    with open(data, "w") as fh:
        for i in range(40):
            fh.write(
                json.dumps(
                    {"id": f"q{i}", "kind": "math", "question": f"What is {i} + 1?", "answer": str(i + 1)}
                )
                + "\n"
            )
    trained = {}
    for key in (42, 420):
        run = str(tmp_path / f"run-k{key}")
        cfg = dataclasses.replace(
            config.Config(method="grpo", model="tiny"),
            data=str(data),
            train_problems=40,
            prompts_per_step=8,
            run_key=key,
        )
        runs.prepare(run, dataclasses.asdict(cfg))
        os.makedirs(os.path.join(run, "checkpoint"))
        with open(os.path.join(run, "checkpoint", "state.json"), "w") as fh:
            json.dump({"next_step": 2}, fh)  # two steps of 8 prompts done
        trained[key] = {p["id"] for p in ev.trained_on(run)}
        assert len(trained[key]) == 16
        problems = tm.load_problems(str(data))
        assert trained[key] == {p["id"] for s in range(2) for p in grpo.step_problems(problems, cfg, s)}
    assert trained[42] != trained[420]
    suites = ev.load_suites([str(data)], 40, 0, [str(tmp_path / "run-k42"), str(tmp_path / "run-k420")])
    kept = {p["id"] for p in suites[str(data)]}
    assert kept == {f"q{i}" for i in range(40)} - trained[42] - trained[420]
    assert "left out: the runs trained on them" in capsys.readouterr().out
    assert len(ev.load_suites([str(data)], 40, 0)[str(data)]) == 40  # no runs, nothing left out
