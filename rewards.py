"""rewards.py: the verifiers that turn a finished rollout into its reward r_H in [0, 1].

Paper map
  Sec. 4.1   the Thought MDP's reward is sparse: r_h = 0 for h < H and a terminal
             r_H from verifying the final answer                    score()
  Sec. 5     benchmarks of four kinds: math (equivalence of the
             final answer), multiple choice, yes/no, code             grade_math(), grade_choice(),
                                                                       grade_yesno(), grade_code()
  Sec. 5.3   code is scored by the fraction of unit tests passed      run_code_tests()

Symbols
  r_H        -> score(problem, completion), a float in [0, 1] (code: the fraction of tests passed)
  y~_H       -> the completion's text; its final answer is last_boxed(text)

A problem is a dict with `kind` in {math, choice, yesno, code}; `answer` for the
first three (for `choice` the gold letter, with the options' texts in `choices`
when known); for `code` a list `tests` of dicts whose `type` is
  stdin   {input, output}        the program reads stdin, its stdout must match
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
  * Code runs in a fresh process with its own session, a temporary working
    folder, limits on memory, CPU time, file size and processes, and the whole
    process group killed afterwards. Under root it also drops to user `nobody`,
    because root ignores the process limit. A test that times out, crashes,
    exits early, forks or floods stdout scores 0; nothing it does reaches the
    trainer. A stdin program that prints the right output and then exits with
    status 0 passes; any non-zero exit fails.

Run it
  python rewards.py      # grades a few sample completions of each kind
"""

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time

MATH_TIMEOUT_S = 5.0  # wall-clock limit of one math-verify comparison
CODE_TIMEOUT_S = 4.0  # wall-clock limit of one code test
CODE_MEMORY_MB = 512  # address-space limit of a code test
CODE_MAX_OUTPUT = 1 << 20  # bytes of stdout kept from a code test


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
            yield text[start:i - 1].strip()


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
        self.proc = subprocess.Popen([sys.executable, "-c", MATH_WORKER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
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


def math_equal(gold, pred, timeout=MATH_TIMEOUT_S):
    """Is `pred` equivalent to `gold`? False on a parse failure or a timeout.
    Safe from any thread: the time limit is enforced here, not by a signal."""
    global _worker
    if pred is None or gold is None:
        return False
    gold, pred = str(gold), str(pred)
    if normalize_math(gold) == normalize_math(pred):
        return True
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
    `Option B`, or an option's full text; None if it names none."""
    if answer is None:
        return None
    a = re.sub(r"\\text\{([^{}]*)\}", r"\1", answer).strip().strip("$").strip()
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
# Code: one sandboxed process per test

# The harness that runs inside the sandbox. It reads a JSON job from one pipe and
# writes one verdict, tagged with a nonce, on another (their fds come in argv);
# the program's own stdout and stderr never carry the verdict.
HARNESS = r'''
import json, os, sys
job = json.loads(os.fdopen(int(sys.argv[1])).read())
verdict = os.fdopen(int(sys.argv[2]), "w")
def say(ok):
    verdict.write(job["nonce"] + json.dumps(bool(ok))); verdict.flush(); os._exit(0)
def _no_fork(*a, **k):
    raise OSError("process creation is disabled in the sandbox")
os.fork = os.forkpty = os.system = os.kill = os.killpg = _no_fork
for name in ("spawnv", "spawnve", "spawnl", "spawnle", "execv", "execve", "posix_spawn", "posix_spawnp"):
    if hasattr(os, name):
        setattr(os, name, _no_fork)
import subprocess
subprocess.Popen = _no_fork
env = {"__name__": "__main__"}
test = job["test"]
if test["type"] == "stdin":
    exec(compile(job["program"], "solution.py", "exec"), env)
    sys.stdout.flush()
    os._exit(0)
env["__name__"] = "solution"
exec(compile(job["program"], "solution.py", "exec"), env)
if test["type"] == "call":
    args = test["input"] if isinstance(test["input"], list) else [test["input"]]
    fn = env.get(test["fn_name"])
    if fn is None and "Solution" in env:
        fn = getattr(env["Solution"](), test["fn_name"])
    out = fn(*args)
    try:
        json_out = json.loads(json.dumps(out))
    except (TypeError, ValueError):
        json_out = out
    say(json_out == test["output"] or (isinstance(out, tuple) and list(out) == test["output"]))
exec(compile(test["code"], "test.py", "exec"), env)
say(True)
'''


def _world_runnable(path):
    """Can user nobody execute `path` (every parent folder searchable by others)?"""
    path = os.path.realpath(path)
    if not os.stat(path).st_mode & 0o001:
        return False
    parent = os.path.dirname(path)
    while parent != "/":
        if not os.stat(parent).st_mode & 0o001:
            return False
        parent = os.path.dirname(parent)
    return True


def _sandbox_python():
    """(interpreter, drop_to_nobody). Under root, prefer an interpreter that user
    nobody can run, so that the process limit applies; else stay root and rely on
    the harness's disabled fork/exec and the process-group kill."""
    if os.geteuid() != 0:
        return sys.executable, False
    for candidate in (sys.executable, "/usr/bin/python3"):
        if os.path.exists(candidate) and _world_runnable(candidate):
            return candidate, True
    return sys.executable, False


SANDBOX_PYTHON, DROP_ROOT = _sandbox_python()


def _limit_child():
    """preexec_fn of a sandboxed test: resource limits, then drop root."""
    import resource

    mem = CODE_MEMORY_MB << 20
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    cpu = int(CODE_TIMEOUT_S) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 24, 1 << 24))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if DROP_ROOT:  # root ignores RLIMIT_NPROC: run as nobody
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))


def _same_output(got, expected):
    """stdin tests: compare stripped lines; numbers equal up to 1e-6 also match."""
    got_lines = [line.strip() for line in got.strip().splitlines()]
    exp_lines = [line.strip() for line in str(expected).strip().splitlines()]
    if got_lines == exp_lines:
        return True
    if len(got_lines) != len(exp_lines):
        return False
    for g, e in zip(got_lines, exp_lines):
        if g == e:
            continue
        try:
            gv, ev = [float(t) for t in g.split()], [float(t) for t in e.split()]
        except ValueError:
            return False
        if len(gv) != len(ev) or any(abs(a - b) > 1e-6 * max(1.0, abs(b)) for a, b in zip(gv, ev)):
            return False
    return True


def run_code_test(program, test, timeout=CODE_TIMEOUT_S):
    """Run one test of `program` in the sandbox; True iff it passes."""
    nonce = secrets.token_hex(8)
    job = json.dumps({"program": program, "test": test, "nonce": nonce}).encode()
    with tempfile.TemporaryDirectory(prefix="srpo_code_") as workdir:
        os.chmod(workdir, 0o777)  # the sandbox user must be able to write here
        job_r, job_w = os.pipe()
        out_r, out_w = os.pipe()
        proc = None
        try:
            proc = subprocess.Popen(
                [SANDBOX_PYTHON, "-I", "-S", "-c", HARNESS, str(job_r), str(out_w)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                cwd=workdir, env={"PATH": "/usr/bin:/bin", "HOME": workdir, "PYTHONHASHSEED": "0"},
                pass_fds=(job_r, out_w), start_new_session=True, preexec_fn=_limit_child,
            )
            os.close(job_r)
            os.close(out_w)
            job_r = out_w = None
            with os.fdopen(job_w, "wb") as f:
                job_w = None
                f.write(job)
            stdin = str(test.get("input", "")) if test["type"] == "stdin" else ""
            try:
                stdout, _ = proc.communicate(stdin.encode(), timeout=timeout)
            except subprocess.TimeoutExpired:
                return False
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the whole group, forks included
                except (ProcessLookupError, PermissionError):
                    pass
            os.set_blocking(out_r, False)
            try:
                verdict = os.read(out_r, 4096).decode(errors="replace")
            except BlockingIOError:
                verdict = ""
        except OSError:
            return False
        finally:
            if proc is not None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the whole group, forks included
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
            for fd in (job_r, job_w, out_r, out_w):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
        if test["type"] == "stdin":
            return proc.returncode == 0 and _same_output(stdout[:CODE_MAX_OUTPUT].decode(errors="replace"), test["output"])
        return verdict == nonce + "true"


def run_code_tests(program, tests, timeout=CODE_TIMEOUT_S):
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
    kind = problem.get("kind")
    if kind not in GRADERS:
        raise ValueError(f"problem kind must be one of {sorted(GRADERS)}, got {kind!r} (problem {problem.get('id')})")
    if kind == "code" and not problem.get("tests"):
        raise ValueError(f"code problem {problem.get('id')} has no tests")
    if kind != "code" and "answer" not in problem:
        raise ValueError(f"{kind} problem {problem.get('id')} has no 'answer'")
    return float(GRADERS[kind](problem, completion or ""))


def main():
    examples = [
        ({"kind": "math", "answer": "2\\sqrt{3}"}, "so the side is \\boxed{\\sqrt{12}}"),
        ({"kind": "math", "answer": "\\frac{1}{2}"}, "\\boxed{0.5}"),
        ({"kind": "math", "answer": "7"}, "\\boxed{8}"),
        ({"kind": "choice", "answer": "B", "choices": ["cat", "dog"]}, "\\boxed{(B) dog}"),
        ({"kind": "yesno", "answer": "yes"}, "\\boxed{True}"),
        ({"kind": "code", "tests": [{"type": "call", "fn_name": "add", "input": [2, 3], "output": 5}]},
         "```python\ndef add(a, b):\n    return a + b\n```"),
        ({"kind": "code", "tests": [{"type": "stdin", "input": "", "output": "1"}]},
         "```python\nwhile True: pass\n```"),
    ]
    for problem, completion in examples:
        print(f"{score(problem, completion):.2f}  {problem['kind']:<6} gold={problem.get('answer')!r:<14} "
              f"completion={completion[:50]!r}")


if __name__ == "__main__":
    main()
