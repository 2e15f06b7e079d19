"""rewards.py: the verifiers that turn a finished rollout into its reward r_H in [0, 1].

Paper map
  Sec. 4.1   the Thought MDP's reward is sparse: r_h = 0 for h < H and a terminal
             r_H from verifying the final answer                    score()
  Sec. 5     benchmarks of four kinds: math (equivalence of the
             final answer), multiple choice, yes/no, code             grade_math(), grade_choice(),
                                                                       grade_yesno(), grade_code()
  Sec. 5.3   code is scored by the fraction of unit tests passed      run_code_tests(); the program
                                                                       runs in sandbox.py

Symbols
  r_H        -> score(problem, completion), a float in [0, 1] (code: the fraction of tests passed)
  y~_H       -> the completion's text; its final answer is last_boxed(text)

A problem is a dict with `kind` in {math, choice, yesno, code}; `answer` for the
first three (for `choice` the gold letter, with the options' texts in `choices`
when known); for `code` a list `tests` of dicts whose `type` is
  stdin   {input, output}        the program reads stdin, its stdout must match (_same_output)
  call    {fn_name, input, output}  fn_name(*input) (or Solution().fn_name) must return output
  assert  {code}                 run after the program; the test fails by raising
The final answer is the content of the last \\boxed{...} (nested braces handled);
for code it is the last fenced code block.

Choices made here, and why
  * Math equivalence: a cheap normalised string match first, then the
    `math-verify` package (sympy-backed: fractions vs decimals, radicals,
    intervals, tuples, units, `x = ` prefixes, percentages). Its own time limit
    uses SIGALRM and fails outside the main thread, so it runs in one worker
    process with a wall-clock limit enforced from here: grading works from any
    thread, and a pathological expression costs at most `MATH_TIMEOUT_S`.
    The gold answer is wrapped in $...$ and the prediction in \\boxed{...} before
    parsing (math-verify misreads bare LaTeX such as `2\\sqrt{3}` as 2).

Code: the threat model (the policy is an optimiser pointed at this verifier)
  Trusted: this file (the judge), the test dicts from the benchmark (an assert
  test's code, e.g. HumanEval's check(candidate), runs here, in the judge), the
  interpreter and the kernel. Untrusted: the program and everything in its
  sandbox process (sandbox.py), whose runner the program can patch.
  * The program never holds what decides its grade: it receives only its own
    source, a stdin test's input, or a call's arguments. Expected outputs, test
    code and the verdict stay here.
  * No object of the program's is compared here: results cross as plain JSON
    and are decoded into exact builtin types (sandbox.from_plain), so an
    object whose __eq__ says yes, a patched builtin or a subclass buys nothing.
  * An assert test runs here with the program's top-level functions and
    classes replaced by proxies (one call, one message); an exception or a
    malformed, late or missing reply fails the test. The program's exception
    reaches the test only as one of PASSED_EXCEPTIONS (StopIteration, which
    would end a test's map() early, is not one).
  * A stdin output matches as LiveCodeBench compares: equal lines, or equal
    finite decimals token by token, with no tolerance (NaN matches nothing).
  * Where Linux gives the sandbox its own namespaces (sandbox.mode() ==
    "namespaces": util-linux unshare), no process outlives its grade, it
    reaches no network or IPC of the host, and no file outside its private
    /tmp changes (as root it runs as nobody; under a normal user's judge its
    mounts are locked in a nested user namespace, with no capability and
    no_new_privs). Elsewhere a program that leaves its
    process group can survive its grade, and training on code is refused
    unless --allow-weak-sandbox.
  * A hostile program costs at most its time limit; it can still print
    anything, return any value it likes (a hard-coded answer is a wrong
    program that happens to pass that test), and read world-readable files
    other than the hidden project and data folders.

Run it
  python rewards.py      # grades a few sample completions of each kind
"""

import ast
import decimal
import json
import os
import re
import subprocess
import sys
import threading
import time

import sandbox

MATH_TIMEOUT_S = 5.0  # wall-clock limit of one math-verify comparison


# -----------------------------------------------------------------------------
# Final-answer extraction


def boxed_contents(text):
    """The contents of every complete \\boxed{...} (or \\fbox{...}) in text, braces
    balanced, stripped, last first."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text or "")]
    for start in reversed(starts):
        depth, i = 1, start
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            yield text[start : i - 1].strip()


def last_boxed(text):
    """Content of the last complete \\boxed{...} in text; None if absent."""
    return next(boxed_contents(text), None)


def unwrap_text(s):
    """`\\text{3}`, `\\textbf{yes}`, `\\mathrm{no}` -> their contents."""
    return re.sub(r"\\(?:text|textbf|mathrm)\s*\{([^{}]*)\}", r"\1", s)


def last_code_block(text):
    """The last fenced ``` block of text (language tag dropped); None if absent."""
    blocks = re.findall(r"```[ \t]*[\w+-]*[ \t]*\n(.*?)```", text, flags=re.S)
    return blocks[-1] if blocks else None


# -----------------------------------------------------------------------------
# Math


def normalize_math(s):
    """Light, safe normalisation for the exact-match shortcut."""
    s = s.strip().strip("$").strip()
    s = re.sub(r"\\text\{\s*([^{}]*)\}", r"\1", s)
    s = re.sub(r"\\(?:left|right|displaystyle|,|;|!)", "", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"^[a-zA-Z]\s*=\s*", "", s)  # "x = 3" -> "3"
    s = re.sub(r"\s+", "", s).rstrip(".")
    return s


# math-verify runs in one long-lived worker process that reads (gold, pred) as
# JSON lines and answers true/false. A plain subprocess (not multiprocessing),
# so that starting it never re-imports the caller's main module.
MATH_WORKER = r"""
import json, sys
from math_verify import parse, verify
print("ready", flush=True)
for line in sys.stdin:
    gold, pred = json.loads(line)
    try:
        ok = bool(verify(parse("$" + gold + "$"), parse("\\boxed{" + pred + "}")))
    except Exception:
        ok = False
    print(json.dumps(ok), flush=True)
"""


class _MathWorker:
    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MATH_WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.buffer = b""
        if self._read_line(timeout=300) != "ready":  # start-up is not a grading timeout
            self.kill()
            raise RuntimeError("the math-verify worker did not start: is math-verify installed?")

    def _read_line(self, timeout):
        """One line from the worker, or None after `timeout` seconds."""
        import select

        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode().strip()

    def ask(self, gold, pred, timeout):
        self.proc.stdin.write((json.dumps([gold, pred]) + "\n").encode())
        self.proc.stdin.flush()
        return self._read_line(timeout)

    def kill(self):
        self.proc.kill()
        self.proc.wait()


_worker = None
_worker_lock = threading.Lock()


def warm_up():
    """Start the math grading worker now rather than inside the first grading call."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = _MathWorker()


INTEGER = re.compile(r"-?[0-9]+")  # a plain decimal integer, compared without math-verify


def math_equal(gold, pred, timeout=MATH_TIMEOUT_S):
    """Is `pred` equivalent to `gold`? False on a parse failure or a timeout.
    Safe from any thread: the time limit is enforced here, not by a signal."""
    global _worker
    if pred is None or gold is None:
        return False
    gold, pred = str(gold), str(pred)
    if normalize_math(gold) == normalize_math(pred):
        return True
    if INTEGER.fullmatch(gold.strip()) and INTEGER.fullmatch(pred.strip()):  # two integers: no parser needed
        return int(gold) == int(pred)
    warm_up()
    with _worker_lock:
        try:
            answer = _worker.ask(gold, pred, timeout)
        except OSError:  # the worker died
            answer = None
        if answer is None:  # stuck in sympy or dead: replace it on the next call
            _worker.kill()
            _worker = None
            return False
        return answer == "true"


def grade_math(problem, completion):
    return float(math_equal(problem["answer"], last_boxed(completion)))


# -----------------------------------------------------------------------------
# Multiple choice and yes/no


def choice_letter(answer, choices=None):
    """The option letter an answer names: `B`, `(B)`, `B) text`, `B. text`,
    `Option B`, or an option's full text; None if it names none. A bare letter
    wins over an option's text: `C` is option C even when option B's text is `c`
    (an MMLU physics item: the speed of light)."""
    if answer is None:
        return None
    a = re.sub(r"\\text\{([^{}]*)\}", r"\1", answer).strip().strip("$").strip()
    bare = re.fullmatch(r"[(\[]?([A-Za-z])[)\].:]?", a)
    if bare:
        return bare.group(1).upper()
    for letter, text in zip("ABCDEFGHIJ", choices or []):  # an option's text ("A cat" too)
        if a.lower().rstrip(".") == str(text).strip().lower().rstrip("."):
            return letter
    m = re.fullmatch(r"(?:option|answer|choice)?\s*[(\[]?([A-Za-z])[)\].:]?(?:\s+.*)?", a, flags=re.I | re.S)
    return m.group(1).upper() if m else None


def grade_choice(problem, completion):
    pred = choice_letter(last_boxed(completion), problem.get("choices"))
    return float(pred is not None and pred == str(problem["answer"]).strip().upper())


YES = {"yes", "true", "y", "correct"}
NO = {"no", "false", "n", "incorrect"}


def yes_no(answer):
    """True for yes/true, False for no/false, None otherwise."""
    if answer is None:
        return None
    a = unwrap_text(str(answer)).strip().strip("$.").strip().lower()
    return True if a in YES else False if a in NO else None


def grade_yesno(problem, completion):
    gold = problem["answer"]
    gold = gold if isinstance(gold, bool) else yes_no(gold)
    pred = yes_no(last_boxed(completion))
    return float(pred is not None and pred == gold)


# -----------------------------------------------------------------------------
# Code: the judge. The program runs in sandbox.py and only computes; every
# comparison below runs here, on plain values decoded from JSON.


# The exceptions a candidate's error may become in the judge, where a test may expect
# one. Others (StopIteration above all: raised inside map() it would end the map early
# and let `assert all(map(candidate, xs))` pass) arrive as CandidateError, a failure.
PASSED_EXCEPTIONS = (
    ArithmeticError,
    AssertionError,
    AttributeError,
    IndexError,
    KeyError,
    LookupError,
    NotImplementedError,
    OverflowError,
    RecursionError,
    TypeError,
    ValueError,
    ZeroDivisionError,
)


def _exception(name, message):
    """The candidate's exception as the builtin exception of that name when it is in
    PASSED_EXCEPTIONS (a test may expect one), else CandidateError. Never an object
    of the program's."""
    cls = {c.__name__: c for c in PASSED_EXCEPTIONS}.get(str(name))
    if cls is not None:
        return cls(f"(in the sandbox) {message}")
    return sandbox.CandidateError(f"{name}: {message}")


def _ask(box, msg):
    """One request to the sandbox; its reply, or the candidate's exception raised here."""
    reply = box.ask(msg)
    if "error" in reply:
        raise _exception(reply["error"], reply.get("message"))
    return reply


def call(box, name, args, obj=None):
    """candidate(*args) through the boundary: one request, one reply, plain values."""
    msg = {"fn": name, "args": sandbox.to_plain(list(args), _ref_of)}
    if obj is not None:
        msg["obj"] = obj
    return sandbox.from_plain(_ask(box, msg).get("ok"))


class _Instance:
    """A proxy of an object created in the sandbox (e.g. Solution()): its methods
    are calls through the boundary."""

    def __init__(self, box, ref):
        self._box, self._ref = box, ref

    def __getattr__(self, name):
        return lambda *args: call(self._box, name, args, obj=self._ref)


def _ref_of(v):
    return v._ref if type(v) is _Instance else None


def _proxies(box, program):
    """A proxy for every top-level function and class of the program, found by
    parsing it (never running it) here."""

    def new(name, args):
        return _Instance(box, _ask(box, {"new": name, "args": sandbox.to_plain(list(args), _ref_of)})["ref"])

    names = {}
    for node in ast.parse(program).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = lambda *args, _n=node.name: call(box, _n, args)
        elif isinstance(node, ast.ClassDef):
            names[node.name] = lambda *args, _n=node.name: new(_n, args)
    return names


def _as_json(v):
    """A call test's result as the benchmark stores outputs (tuples as lists)."""
    try:
        return json.loads(json.dumps(v))
    except (TypeError, ValueError):
        return v


def _exact_number(token):
    """A finite decimal number, exactly (Decimal, no float rounding), or None."""
    try:
        value = decimal.Decimal(token)
    except decimal.InvalidOperation:
        return None
    return value if value.is_finite() else None


def _same_output(got, expected):
    """stdin tests, LiveCodeBench's rule: the stripped lines are equal, or, line by
    line, every whitespace-separated token is the same finite decimal number
    (`3.0` is `3`). No tolerance: `1000000000` is not `1000000007`, integers past
    2^53 stay exact, and NaN or infinity equals no number (a float tolerance
    let `nan` pass any numeric test, since every comparison with NaN is false)."""
    got_lines = [line.strip() for line in got.strip().splitlines()]
    exp_lines = [line.strip() for line in str(expected).strip().splitlines()]
    if len(got_lines) != len(exp_lines):
        return False
    for g, e in zip(got_lines, exp_lines):
        if g == e:
            continue
        gv, ev = [_exact_number(t) for t in g.split()], [_exact_number(t) for t in e.split()]
        if len(gv) != len(ev) or None in gv or None in ev or gv != ev:
            return False
    return True


def run_code_test(program, test, timeout=sandbox.CODE_TIMEOUT_S):
    """Run one test of `program` in a sandbox; True iff it passes."""
    try:
        if test["type"] == "stdin":  # the program reads the input; its output is compared here
            with sandbox.Sandbox(program, "stdin", timeout=timeout) as box:
                out, code = box.run_stdin(str(test.get("input", "")))
            return code == 0 and _same_output(out, test["output"])
        with sandbox.Sandbox(program, "serve", timeout=timeout) as box:
            if test["type"] == "call":  # one call; the result is compared here
                args = test["input"] if isinstance(test["input"], list) else [test["input"]]
                return _as_json(call(box, test["fn_name"], args)) == test["output"]
            namespace = dict(_proxies(box, program), __name__="check")
            # trusted test code, here; it calls proxies
            exec(compile(test["code"], "test.py", "exec"), namespace)
            return True
    except Exception:  # an assert failed, the candidate raised or misbehaved, the time ran out
        return False


def run_code_tests(program, tests, timeout=sandbox.CODE_TIMEOUT_S):
    """Fraction of `tests` that `program` passes (0 when there is no program)."""
    if not program or not tests:
        return 0.0
    return sum(run_code_test(program, t, timeout) for t in tests) / len(tests)


def grade_code(problem, completion):
    return run_code_tests(last_code_block(completion), problem["tests"])


# -----------------------------------------------------------------------------
# The reward


GRADERS = {"math": grade_math, "choice": grade_choice, "yesno": grade_yesno, "code": grade_code}


def score(problem, completion):
    """The terminal reward r_H in [0, 1] of `completion` for `problem` (Sec. 4.1)."""
    check_problem(problem)
    return float(GRADERS[problem["kind"]](problem, completion or ""))


def check_problem(problem):
    """Refuse a problem no grader can score, in one line that names it."""
    kind = problem.get("kind")
    if kind not in GRADERS:
        raise ValueError(
            f"problem kind must be one of {sorted(GRADERS)}, got {kind!r} (problem {problem.get('id')})"
        )
    if kind == "code" and not problem.get("tests"):
        raise ValueError(f"code problem {problem.get('id')} has no tests")
    if kind != "code" and "answer" not in problem:
        raise ValueError(f"{kind} problem {problem.get('id')} has no 'answer'")


def main():
    examples = [
        ({"kind": "math", "answer": "2\\sqrt{3}"}, "so the side is \\boxed{\\sqrt{12}}"),
        ({"kind": "math", "answer": "\\frac{1}{2}"}, "\\boxed{0.5}"),
        ({"kind": "math", "answer": "7"}, "\\boxed{8}"),
        ({"kind": "choice", "answer": "B", "choices": ["cat", "dog"]}, "\\boxed{(B) dog}"),
        ({"kind": "yesno", "answer": "yes"}, "\\boxed{True}"),
        (
            {"kind": "code", "tests": [{"type": "call", "fn_name": "add", "input": [2, 3], "output": 5}]},
            "```python\ndef add(a, b):\n    return a + b\n```",
        ),
        (
            {"kind": "code", "tests": [{"type": "stdin", "input": "", "output": "1"}]},
            "```python\nwhile True: pass\n```",
        ),
    ]
    for problem, completion in examples:
        print(
            f"{score(problem, completion):.2f}  {problem['kind']:<6} gold={problem.get('answer')!r:<14} "
            f"completion={completion[:50]!r}"
        )


if __name__ == "__main__":
    main()
