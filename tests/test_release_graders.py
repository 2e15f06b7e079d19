"""Tests for release_graders.py: the authors' release's answer graders, against
cases worked out by hand from its rules, and beside ours where the two differ."""

import pytest
from conftest import ANSWERED, ScriptedEngine

import release_graders as rg
import rewards
import thought_mdp as tm


@pytest.mark.parametrize(
    "gold,completion,paper,ours",
    [
        ("\\frac{1}{2}", "\\boxed{0.5}", 1.0, 1.0),  # 0.5 -> \frac{1}{2}
        ("\\frac{3}{4}", "\\boxed{3/4}", 1.0, 1.0),  # a/b of integers -> \frac{a}{b}
        ("\\frac{1}{2}", "\\boxed{\\dfrac12}", 1.0, 1.0),  # dfrac, \frac12
        ("2\\sqrt{3}", "\\boxed{2\\sqrt3}", 1.0, 1.0),
        ("5", "\\boxed{x = 5}", 1.0, 1.0),  # a short left side is dropped
        ("90", "\\boxed{90^\\circ}", 1.0, 1.0),
        ("5", "\\boxed{5 \\text{ cm}}", 1.0, 1.0),  # a trailing unit is dropped
        ("10", "\\boxed{10\\%}", 1.0, 1.0),
        ("2\\sqrt{3}", "\\boxed{\\sqrt{12}}", 0.0, 1.0),  # equal values, other strings: the release is strict
        ("0.25", "\\boxed{\\frac{1}{4}}", 0.0, 1.0),
        ("7", "\\boxed{7} no wait \\boxed{8}", 0.0, 0.0),  # the last box
        ("7", "the answer is 7", 0.0, 0.0),  # no box
        ("7", "\\fbox{7}", 0.0, 1.0),  # the release finds an \fbox but cannot unwrap it
        ("7", "\\boxed{7", 0.0, 0.0),  # never closed
    ],
)
def test_math_is_the_last_box_under_the_math_string_normalisation(gold, completion, paper, ours):
    problem = {"kind": "math", "answer": gold}
    assert rg.score(problem, completion) == paper
    assert rewards.score(problem, completion) == ours


@pytest.mark.parametrize(
    "completion,letter",
    [
        ("so \\boxed{C}", "C"),
        ("\\boxed{c} and later the answer is (B)", "C"),  # a boxed letter outranks "answer is" anywhere
        ("The answer is (B).", "B"),
        ("Answer: d", "D"),
        ("I pick\nA.", "A"),  # a letter ending a line
        ("Between A and B I take B here", "B"),  # the last standalone capital
        ("no letter at all", None),
    ],
)
def test_choice_letter_ladder(completion, letter):
    assert rg.choice_letter(completion) == letter
    assert rg.score({"kind": "choice", "answer": "B"}, completion) == float(letter == "B")


@pytest.mark.parametrize(
    "gold,completion,expected",
    [
        (True, "Yes, it is.", 1.0),
        ("yes", "No... wait, yes", 1.0),  # the last yes/no word
        (False, "\\boxed{no}", 1.0),
        ("No", "Yesterday it was not", 0.0),  # whole words only: none here
        (True, "\\boxed{True}", 0.0),  # true is no yes/no word for the release (ours reads it)
    ],
)
def test_yes_no_is_the_last_yes_or_no_word(gold, completion, expected):
    assert rg.score({"kind": "yesno", "answer": gold}, completion) == expected


def test_a_malformed_problem_is_refused_in_one_line():
    with pytest.raises(ValueError, match="has no 'answer'"):
        rg.score({"id": "p", "kind": "math"}, "\\boxed{1}")


def test_the_rollout_reward_follows_the_grader_flag(tiny_tokenizer):
    """--grader paper: the Thought MDP's r_H comes from the release's rules."""
    strict = dict(ANSWERED, answer="5.0")  # the engine answers \boxed{5}: equal for ours, not the release's
    for grader, reward in (("ours", 1.0), ("paper", 0.0)):
        cfg = tm.ThoughtConfig(grader=grader)
        [r] = tm.sample_rollouts(
            ScriptedEngine(tiny_tokenizer, [True]), [tm.initial_state(tiny_tokenizer, strict, cfg)], 1, cfg
        )
        assert r.answer == "5" and r.reward == reward
