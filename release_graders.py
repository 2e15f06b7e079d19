"""release_graders.py: the authors' release's answer graders, as a second verifier (Sec. 5, Table 3).

The paper reports Table 3 without saying how answers were graded; the
authors' release (Ankur-Samanta/SRPO, training/reward_fn.py and
training/reward_scorers.py) grades them as below. Our own graders
(rewards.py) are more lenient (math-verify's equivalence), so a pass rate
of ours is not the paper's number. This file reads answers the release's way,
so that evaluation can report both columns and training can use either
(`--grader ours|paper`).

Paper map
  Sec. 5, Table 3   math: the last \\boxed{} of the completion against the gold
                    answer, both under the MATH dataset's string normalisation
                    (Hendrycks et al., 2021), equal as strings      grade_math(), normalize()
                    multiple choice: the last \\boxed{X}, else the last
                    "answer is X" / "answer: X", else the last letter that ends
                    a line as "X." or "X)", else the last standalone capital
                    A-J                                               choice_letter()
                    yes/no: the last "yes" or "no" word anywhere     grade_yesno()
                    code: the fraction of tests passed, as ours      rewards.grade_code

Symbols
  completion -> the rollout's whole response text
  gold       -> problem["answer"]

Choices, and why
  * Only the release's rules are written here, in our own code; where the
    release routes a dataset to math-verify (TheoremQA, not a benchmark of
    ours) nothing changes.
  * The normalisation is the MATH dataset's well-known one: line breaks,
    `\\!`, `\\left`/`\\right`, degree marks, dollar signs, `\\%` and a trailing
    `\\text{ unit}` dropped; `tfrac`/`dfrac` -> `frac`; a leading `x =` (a
    left side of at most two characters) dropped; `.5` -> `0.5`; `\\sqrt3` ->
    `\\sqrt{3}`, `\\frac12` -> `\\frac{1}{2}`, `0.5` -> `\\frac{1}{2}`, `a/b` of
    two integers -> `\\frac{a}{b}`; spaces removed. Two answers are equal when
    their normal forms are equal strings.

Run it
  python release_graders.py   # a few completions, graded by ours and by the release's rules
"""

import re

import rewards

# -----------------------------------------------------------------------------
# Math: the last box, the MATH string normalisation, string equality


def last_box(text):
    """The content of the last `\\boxed{...}` (or `\\boxed x`, up to a `$`; or, with
    no \\boxed, the last `\\fbox{...}`, which the release then fails to unwrap: None);
    None when there is none or its braces never close."""
    i = text.rfind("\\boxed")
    if i >= 0 and text.startswith("\\boxed ", i):
        return text[i + len("\\boxed ") :].split("$")[0]
    if i < 0:  # an \fbox is found, but is not a box the release can read
        return None
    depth, j, start = 0, i, None
    while j < len(text):
        if text[j] == "{":
            depth += 1
            start = j + 1 if start is None else start
        elif text[j] == "}":
            depth -= 1
            if depth == 0 and start is not None:
                return text[start:j] if text.startswith("\\boxed{", i) else None
        j += 1
    return None


def _fix_fracs(s):
    """`\\frac12` -> `\\frac{1}{2}`, `\\frac1{2}` -> `\\frac{1}{2}`; a braced numerator is
    left as it is; an empty `\\frac` raises IndexError (the answer is then compared as
    written), a one-character one leaves the whole answer unchanged."""
    head, *parts = s.split("\\frac")
    out = head
    for part in parts:
        out += "\\frac"
        if part[0] == "{":
            out += part
            continue
        if len(part) < 2:
            return s
        a, b, rest = part[0], part[1], part[2:]
        out += "{" + a + "}" + (b + rest if b == "{" else "{" + b + "}" + rest)
    return out


def _fix_sqrt(s):
    """`\\sqrt3` -> `\\sqrt{3}`: the one character after a bare \\sqrt is braced."""
    head, *parts = s.split("\\sqrt")
    return head + "".join("\\sqrt" + (p if p[0] == "{" else "{" + p[0] + "}" + p[1:]) for p in parts)


def _fix_slash(s):
    """`3/4` (two integers written plainly, nothing else) -> `\\frac{3}{4}`."""
    sides = s.split("/")
    if len(sides) != 2 or not all(re.fullmatch(r"-?\d+", x) and str(int(x)) == x for x in sides):
        return s
    return f"\\frac{{{sides[0]}}}{{{sides[1]}}}"


def normalize(s):
    """An answer's normal form under the MATH dataset's string normalisation. Raises
    IndexError or ValueError on a form it cannot read (the caller compares as written)."""
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "")
    if "\\text{ " in s:  # a unit at the end: "5 \\text{ cm}" -> "5 "
        head, *units = s.split("\\text{ ")
        if len(units) > 1:
            raise ValueError("more than one unit")
        s = head
    s = s.replace("\\%", "")  # a bare % stays, as in the release
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s.startswith("."):
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:  # "x = 3" -> " 3"
        s = sides[1]
    s = _fix_sqrt(s).replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_slash(s)


def grade_math(problem, completion):
    pred = last_box(completion)
    if pred is None:
        return 0.0
    try:
        return float(normalize(pred) == normalize(str(problem["answer"])))
    except (IndexError, ValueError):  # a malformed answer: compared as written
        return float(pred == str(problem["answer"]))


# -----------------------------------------------------------------------------
# Multiple choice and yes/no

CHOICE_PATTERNS = (  # in order: a boxed letter, "answer is X", a letter ending a line
    r"\\boxed\{([A-Ja-j])\}",
    r"[Aa]nswer\s*(?:is|:)\s*\(?([A-Ja-j])\)?",
    r"\b([A-J])\s*[.)]\s*$",
)


def choice_letter(completion):
    """The option letter the release reads from a completion; None if none."""
    for pattern in CHOICE_PATTERNS:
        found = re.findall(pattern, completion, re.MULTILINE | re.IGNORECASE)
        if found:
            return found[-1].upper()
    loose = re.findall(r"(?:^|\s)([A-J])(?:\s|$|\.)", completion, re.MULTILINE)  # a standalone capital
    return loose[-1] if loose else None


def grade_choice(problem, completion):
    return float(choice_letter(completion) == str(problem["answer"]).strip().upper())


def grade_yesno(problem, completion):
    words = re.findall(r"\b(yes|no)\b", completion.lower())
    gold = problem["answer"]
    gold = gold if isinstance(gold, bool) else rewards.yes_no(gold)
    return float(bool(words) and gold is not None and (words[-1] == "yes") == gold)


GRADERS = {"math": grade_math, "choice": grade_choice, "yesno": grade_yesno, "code": rewards.grade_code}


def score(problem, completion):
    """r_H in [0, 1] under the release's rules; the same checks of the problem as rewards.score."""
    rewards.check_problem(problem)
    return float(GRADERS[problem["kind"]](problem, completion or ""))


def main():
    examples = [
        ({"kind": "math", "answer": "\\frac{1}{2}"}, "so \\boxed{0.5}"),
        ({"kind": "math", "answer": "2\\sqrt{3}"}, "the side is \\boxed{\\sqrt{12}}"),
        ({"kind": "math", "answer": "\\frac{3}{4}"}, "\\boxed{3/4}"),
        ({"kind": "choice", "answer": "B", "choices": ["cat", "dog"]}, "The answer is (B)."),
        ({"kind": "yesno", "answer": "yes"}, "Yes, it is, so \\boxed{True}"),
    ]
    for problem, completion in examples:
        ours, theirs = rewards.score(problem, completion), score(problem, completion)
        gold = repr(problem["answer"])
        print(f"{problem['kind']:>6} gold {gold:>16}: ours {ours} release {theirs} | {completion!r}")


if __name__ == "__main__":
    main()
