"""Tests for rewards.py: a table of grading cases per kind (right and wrong), the
answer extractors, thread safety and time limits, and the code sandbox."""

import os
import threading
import time

import pytest
from conftest import processes_with

import rewards
import sandbox

MATH = [  # (gold, completion, expected)
    ("2\\sqrt{3}", "\\boxed{2\\sqrt{3}}", 1),
    ("2\\sqrt{3}", "\\boxed{\\sqrt{12}}", 1),
    ("\\frac{1}{2}", "\\boxed{0.5}", 1),
    ("\\frac{1}{2}", "\\boxed{\\dfrac{1}{2}}", 1),
    ("\\frac{3}{4}", "\\boxed{3/4}", 1),
    ("10", "\\boxed{10\\text{ cm}}", 1),
    ("3", "so \\boxed{x = 3}", 1),
    ("(1,2)", "\\boxed{(1, 2)}", 1),
    ("[0,1)", "\\boxed{[0, 1)}", 1),
    ("\\frac{\\sqrt{5}-1}{2}", "\\boxed{\\frac{-1+\\sqrt{5}}{2}}", 1),
    ("12", "first \\boxed{7}, then \\boxed{12}", 1),  # the last box counts
    ("\\frac{1}{2}", "\\boxed{\\frac{1}{2}}.", 1),
    ("5", "\\boxed{6}", 0),
    ("2", "\\boxed{2, 3}", 0),
    ("12", "\\boxed{12} was wrong, it is \\boxed{13}", 0),
    ("\\frac{1}{2}", "\\boxed{\\frac{1}{3}}", 0),
    ("2\\sqrt{3}", "\\boxed{2}", 0),
    ("(1,2)", "\\boxed{[1, 2]}", 0),
    ("7", "the answer is 7", 0),  # no box, no answer
    ("7", "\\boxed{7", 0),  # unbalanced
]

CHOICE = [  # (gold, choices, completion, expected)
    ("B", None, "\\boxed{B}", 1),
    ("B", None, "\\boxed{(B)}", 1),
    ("B", None, "\\boxed{B) dog}", 1),
    ("B", None, "\\boxed{b}", 1),
    ("B", ["cat", "dog"], "\\boxed{dog}", 1),
    ("B", ["cat", "dog"], "\\boxed{\\text{B}}", 1),
    ("A", ["a cat", "a dog"], "\\boxed{a cat}", 1),
    ("B", None, "\\boxed{C}", 0),
    ("B", ["cat", "dog"], "\\boxed{cat}", 0),
    ("B", None, "\\boxed{Bob}", 0),
    ("B", None, "B", 0),
]

YESNO = [  # (gold, completion, expected)
    ("yes", "\\boxed{yes}", 1),
    ("yes", "\\boxed{Yes.}", 1),
    ("yes", "\\boxed{True}", 1),
    (True, "\\boxed{yes}", 1),
    ("no", "\\boxed{false}", 1),
    (False, "\\boxed{\\text{No}}", 1),
    ("yes", "\\boxed{no}", 0),
    ("no", "\\boxed{maybe}", 0),
    ("yes", "yes", 0),
]


@pytest.mark.parametrize("gold,completion,expected", MATH)
def test_math(gold, completion, expected):
    assert rewards.score({"kind": "math", "answer": gold}, completion) == expected


@pytest.mark.parametrize("gold,choices,completion,expected", CHOICE)
def test_choice(gold, choices, completion, expected):
    assert rewards.score({"kind": "choice", "answer": gold, "choices": choices}, completion) == expected


@pytest.mark.parametrize("gold,completion,expected", YESNO)
def test_yesno(gold, completion, expected):
    assert rewards.score({"kind": "yesno", "answer": gold}, completion) == expected


def test_last_boxed_handles_nesting():
    assert (
        rewards.last_boxed("\\boxed{\\frac{1}{2}} and \\boxed{\\sqrt{\\frac{a}{b}}}")
        == "\\sqrt{\\frac{a}{b}}"
    )
    assert rewards.last_boxed("\\boxed {3}") == "3"
    assert rewards.last_boxed("\\boxed{open and \\boxed{4}") == "4"
    assert rewards.last_boxed("nothing") is None


def test_math_grading_works_from_threads_and_times_out():
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(rewards.math_equal("2\\sqrt{3}", "\\sqrt{12}")))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 4
    start = time.time()
    assert rewards.math_equal("\\frac{1}{2}", "0.5", timeout=0.0) is False  # no time left: wrong, not a crash
    assert time.time() - start < 2
    assert rewards.math_equal("\\frac{1}{2}", "0.5") is True  # a fresh worker took over


def test_two_integers_are_compared_as_math_verify_compares_them():
    """The shortcut for a plain integer against a plain integer (the classroom world's
    answers) says what math-verify says, leading zeros and signs included."""
    from math_verify import parse, verify

    pairs = [("7", "8"), ("7", "07"), ("-3", "3"), ("-0", "0"), ("12", "012"), ("100", "1000"), ("5", " 5")]
    for gold, pred in pairs:
        expected = bool(verify(parse("$" + gold + "$"), parse("\\boxed{" + pred + "}")))
        assert rewards.math_equal(gold, pred) is expected, (gold, pred)
    assert rewards.INTEGER.fullmatch("7") and not rewards.INTEGER.fullmatch("7.0")


def test_bad_problems_are_refused_clearly():
    with pytest.raises(ValueError, match="kind"):
        rewards.score({"kind": "essay", "answer": "x"}, "\\boxed{x}")
    with pytest.raises(ValueError, match="no 'answer'"):
        rewards.score({"kind": "math"}, "\\boxed{x}")
    with pytest.raises(ValueError, match="no tests"):
        rewards.score({"kind": "code", "tests": []}, "```python\n```")


def code(body):
    return f"Here is my solution.\n```python\n{body}\n```\n"


ADD_TESTS = [
    {"type": "call", "fn_name": "add", "input": [2, 3], "output": 5},
    {"type": "call", "fn_name": "add", "input": [-1, 1], "output": 0},
]


def test_code_call_stdin_and_assert_tests():
    assert (
        rewards.score({"kind": "code", "tests": ADD_TESTS}, code("def add(a, b):\n    return a + b")) == 1.0
    )
    assert rewards.score({"kind": "code", "tests": ADD_TESTS}, code("def add(a, b):\n    return 5")) == 0.5
    leet = code("class Solution:\n    def add(self, a, b):\n        return a + b")
    assert rewards.score({"kind": "code", "tests": ADD_TESTS}, leet) == 1.0
    stdin = [
        {"type": "stdin", "input": "3 4\n", "output": "12\n"},
        {"type": "stdin", "input": "2 2\n", "output": "4"},
    ]
    assert (
        rewards.score(
            {"kind": "code", "tests": stdin}, code("a, b = map(int, input().split())\nprint(a * b)")
        )
        == 1.0
    )
    assert rewards.score({"kind": "code", "tests": stdin}, code("print(12)")) == 0.5
    asserts = [
        {"type": "assert", "code": "assert rev('ab') == 'ba'"},
        {"type": "assert", "code": "assert rev('') == 'x'"},
    ]
    assert rewards.score({"kind": "code", "tests": asserts}, code("def rev(s):\n    return s[::-1]")) == 0.5
    two_blocks = "```python\ndef add(a, b):\n    return 0\n```\nbetter:\n" + code(
        "def add(a, b):\n    return a + b"
    )
    # the last block is the program
    assert rewards.score({"kind": "code", "tests": ADD_TESTS}, two_blocks) == 1.0
    # no block
    assert rewards.score({"kind": "code", "tests": ADD_TESTS}, "def add(a, b): return a + b") == 0.0


HOSTILE = {
    "infinite loop": "def add(a, b):\n    while True:\n        pass",
    "memory bomb": "def add(a, b):\n    x = [0] * (10 ** 10)\n    return a + b",
    "crash": "def add(a, b):\n    return 1 / 0",
    "sys.exit": "import sys\nsys.exit(0)\ndef add(a, b):\n    return a + b",
    "exit inside": "def add(a, b):\n    raise SystemExit(0)",
    "garbage output": "import sys\nsys.stdout.write('true' * 100000)\ndef add(a, b):\n    return None",
    "fork loop": "import os\ndef add(a, b):\n    while True:\n        os.fork()",
    "kill parent": "import os, signal\ndef add(a, b):\n    os.kill(os.getppid(), signal.SIGKILL)",
    "syntax error": "def add(a, b)\n    return a + b",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_programs_score_zero_and_leave_nothing_behind(name):
    start = time.time()
    assert rewards.score({"kind": "code", "tests": ADD_TESTS[:1]}, code(HOSTILE[name])) == 0.0
    assert time.time() - start < sandbox.CODE_TIMEOUT_S + 3
    os.kill(os.getpid(), 0)  # the trainer is alive


def test_a_subprocess_is_allowed_but_does_not_outlive_the_grade():
    """Starting a process is no offence (the old harness forbade it); outliving the test is impossible."""
    program = code(
        "import subprocess\ndef add(a, b):\n    subprocess.Popen(['sleep', '100.4242'])\n    return a + b"
    )
    assert rewards.score({"kind": "code", "tests": ADD_TESTS[:1]}, program) == 1.0
    time.sleep(0.2)
    assert processes_with("100.4242") == []


def test_stdin_program_that_exits_badly_fails():
    tests = [{"type": "stdin", "input": "", "output": "1"}]
    assert rewards.score({"kind": "code", "tests": tests}, code("print(1)\nraise SystemExit(3)")) == 0.0
    assert rewards.score({"kind": "code", "tests": tests}, code("print(1)\nimport sys\nsys.exit(0)")) == 1.0


@pytest.mark.parametrize(
    "program,expected",
    [
        ("print('nan')", "3"),  # NaN made every float comparison false: it passed any number
        ("print('inf')", "1e309"),
        ("print(1000000000)", "1000000007"),  # within a relative 1e-6 of the answer
        ("print(2**53)", str(2**53 + 1)),  # equal once both are floats
        ("print('3 4')", "3"),
        ("print(1.5)", "1.50000001"),
    ],
)
def test_stdin_output_must_match_exactly_as_livecodebench_compares(program, expected):
    assert (
        rewards.score(
            {"kind": "code", "tests": [{"type": "stdin", "input": "", "output": expected}]}, code(program)
        )
        == 0.0
    )


def test_stdin_numbers_compare_as_exact_decimals():
    tests = [{"type": "stdin", "input": "", "output": "3\n0.25 7\n"}]
    assert rewards.score({"kind": "code", "tests": tests}, code("print('3.0')\nprint('0.250', 7)")) == 1.0


def test_a_candidates_stopiteration_cannot_end_a_tests_map_early():
    """`assert all(map(candidate, xs))`: a StopIteration raised by the candidate used to
    arrive as StopIteration and end map() early, so the assert passed."""
    tests = [{"type": "assert", "code": "assert all(map(is_even, [2, 3, 4]))"}]
    cheat = code("def is_even(x):\n    raise StopIteration")
    assert rewards.score({"kind": "code", "tests": tests}, cheat) == 0.0
    honest = code("def is_even(x):\n    return x % 2 == 0")
    assert rewards.score({"kind": "code", "tests": tests}, honest) == 0.0  # 3 is odd
    raises = [
        {
            "type": "assert",
            "code": "try:\n    f(0)\nexcept ZeroDivisionError:\n    pass\nelse:\n    assert False",
        }
    ]
    assert rewards.score({"kind": "code", "tests": raises}, code("def f(x):\n    return 1 / x")) == 1.0


def test_training_on_code_needs_the_namespace_sandbox(tmp_path, monkeypatch, capsys):
    """Where the sandbox has no namespaces, a run on code problems stops before it
    loads a model, with one line naming the flag that accepts the risk."""
    import json

    import config
    import grpo
    import sandbox

    data = tmp_path / "code.jsonl"
    problem = {"id": "c1", "kind": "code", "question": "Write add(a, b).", "tests": ADD_TESTS}
    data.write_text(json.dumps(problem) + "\n")
    monkeypatch.setattr(sandbox, "_MODE", ["process-group"])
    with pytest.raises(SystemExit, match="--allow-weak-sandbox accepts the risk"):
        grpo.main(["--data", str(data), "--out", str(tmp_path / "run")])
    cfg = config.parse_config(["--data", str(data), "--allow-weak-sandbox"])
    assert grpo.sandbox_problem([problem], cfg) is None
    assert cfg.sandbox_mode == ""  # recorded at start, once the data is known to hold code
    assert grpo.sandbox_problem([{"kind": "math", "answer": "1"}], config.parse_config([])) is None
