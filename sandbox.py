"""sandbox.py: where a candidate program runs (Sec. 5.3), isolated from the judge.

The judge (rewards.py) decides every code grade; this file only gives the
program a process of its own to compute in, and a channel for plain values.
The program receives its source, then either a stdin test's input or calls
(function name and arguments); it never sees a test's expected output, its
code or the verdict. rewards.py's docstring states the threat model.

Paper map
  Sec. 5.3   LiveCodeBench's reward is the fraction of tests passed: each test
             is one sandbox process                                   Sandbox
  (ours)     isolation: PID and mount namespaces where Linux allows     mode(), BOOT
  (ours)     values cross as plain JSON, exact builtin types only       to_plain(), from_plain()
  (ours)     infrastructure failures counted, not hidden in a 0 reward   take_failures()
  (ours)     the sandbox as a whole in a cgroup, where the machine allows  Group, cgroup_support()

Symbols
  program     -> the candidate's source
  BOOT        -> the first code in the sandbox process (trusted until the program starts)
  RUNNER      -> runs the program, then answers {"fn", "args"} requests (untrusted after)
  reply       -> {"id", "ok": value} | {"id", "ref": object number} | {"id", "error", "message"}

Isolation
  Namespace mode (Linux with util-linux `unshare`; as root, or as a normal user
  where user namespaces are enabled): every test runs under `unshare --pid
  --fork --kill-child --mount --mount-proc --propagation private --net --ipc
  --uts` (plus `--user --map-root-user` when not root). Its network has a
  loopback of its own and nothing else (no listener of the host is in reach),
  and its SysV and POSIX IPC objects vanish with it. The program is PID 1 of a new PID
  namespace: when it exits or is killed, the kernel kills every process it
  started (double forks and new sessions included), and it sees no process
  outside. In its private mount namespace every mount is remounted read-only;
  /tmp, /var/tmp and /dev/shm are fresh private tmpfs (its folder is
  /tmp/work, gone with the namespace); the project folder and the data caches
  are covered by empty tmpfs, so the benchmark's files cannot be read. Under
  real root it then runs as user nobody, so that the process limit applies.
  As a normal user the judge's `--user --map-root-user` would leave the
  program root's capabilities in its user namespace, enough to undo those
  mounts; so BOOT then sets no_new_privs, enters a second, nested user and
  mount namespace (the mounts copied into it are locked: no unmount, no
  read-write remount), maps itself to uid 65534 and drops every capability
  before the program starts (tests/test_sandbox.py tries the escapes as user
  nobody).
  Fallback mode (no namespaces): a new session killed as a process group, user
  nobody under root, a temporary folder removed afterwards; a program that
  leaves its process group can outlive its grade there.
  Both modes: limits on wall-clock time, address space, CPU time, file size and
  processes, and on the bytes of output the judge reads; and, where the judge
  may make a cgroup (v2 with memory and pids enabled for children, or v1), a
  cgroup of its own that the sandbox joins before anything else: 1 GB and 64
  processes for all its processes together (cgroup_support() says which). `mode()` says which
  mode this machine gives (probed once, by running a program in namespaces).

Choices, and why
  * One process per test, as LiveCodeBench and HumanEval do: no state leaks
    from one test to the next.
  * The runner and the codec are plain Python run with `-I -S` (no site
    packages, no user paths): the benchmarks' programs need only the standard
    library.
  * BOOT and the runner run in one interpreter (no second exec), which keeps a
    test's cost near a bare interpreter start.

Run it
  python sandbox.py        # which isolation this machine gives, and what a program sees from inside
"""

import atexit
import inspect
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

CODE_TIMEOUT_S = 4.0  # wall-clock limit of one code test
CODE_MEMORY_MB = 512  # address-space limit of a code test
CODE_MAX_OUTPUT = 1 << 20  # bytes of stdout, and of one reply, the judge reads
CODE_MAX_PROCS = 64  # processes the sandbox may run (RLIMIT_NPROC)
CODE_GROUP_MEMORY_MB = 1024  # memory of the whole sandbox (its cgroup, where the machine gives one)
NOBODY = 65534  # the uid and gid the sandbox runs as under real root
PROJECT = os.path.dirname(os.path.abspath(__file__))

# The first code in the sandbox process, trusted while it runs (before the program):
# the namespace's view of the file system, the limits, the uid; then the runner.
BOOT = r"""
import ctypes, json, os, resource, sys
cfg = json.loads(sys.argv[1])
for group in cfg["cgroups"]:  # first of all: every process of the sandbox is in its cgroup
    with open(group + "/cgroup.procs", "w") as fh:
        fh.write(str(os.getpid()))
if cfg["mounts"]:
    libc = ctypes.CDLL(None, use_errno=True)
    def mount(src, target, fstype, flags, data):
        if libc.mount(src, target.encode(), fstype, flags, data) != 0:
            raise OSError(ctypes.get_errno(), "mount " + target)
    LOCKED = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21}
    points = []
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        path = fields[4].encode().decode("unicode_escape")
        points.append((path, sum(LOCKED.get(o, 0) for o in fields[5].split(","))))
    for path, flags in points:  # MS_BIND | MS_REMOUNT | MS_RDONLY, keeping the flags a user namespace locks
        if cfg["lock"] and path == "/proc":  # its maps are written below; read-only after that
            continue
        try:
            mount(None, path, None, 4096 | 32 | 1 | flags, None)
        except OSError:
            if not (path.startswith("/proc") or path.startswith("/sys")):
                raise
    for path in ["/tmp", "/var/tmp", "/dev/shm"] + cfg["hide"]:
        if os.path.isdir(path):
            mount(b"tmpfs", path, b"tmpfs", 2 | 4, b"size=64m,mode=1777")
    os.makedirs("/tmp/work", mode=0o777)
    os.chmod("/tmp/work", 0o777)
    cfg["workdir"] = "/tmp/work"
    if cfg["lock"]:  # a normal user's judge: lock these mounts, then hold no capability at all
        if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS: no exec gains privileges
            raise OSError(ctypes.get_errno(), "no_new_privs")
        # a second user namespace and mount namespace: mounts copied into a mount namespace
        # of a less privileged user namespace are locked (no unmount, no read-write remount)
        if libc.unshare(0x10000000 | 0x00020000) != 0:  # CLONE_NEWUSER | CLONE_NEWNS
            raise OSError(ctypes.get_errno(), "unshare")
        for name, text in (("setgroups", "deny"), ("uid_map", "65534 0 1"), ("gid_map", "65534 0 1")):
            with open("/proc/self/" + name, "w") as fh:
                fh.write(text)
        mount(None, "/proc", None, 4096 | 32 | 1 | 2 | 4 | 8, None)  # now /proc too: read-only, nosuid...
        for cap in range(64):  # PR_CAPBSET_DROP: the bounding set, then capset: nothing held
            libc.prctl(24, cap, 0, 0, 0)
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
        if libc.capset(header, (ctypes.c_uint32 * 6)()) != 0:
            raise OSError(ctypes.get_errno(), "capset")
os.chdir(cfg["workdir"])
mem = cfg["memory_mb"] << 20
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_CPU, (cfg["cpu_s"], cfg["cpu_s"]))
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 24, 1 << 24))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
if cfg["drop"]:
    os.setgroups([])
    os.setgid(cfg["nobody"])
    os.setuid(cfg["nobody"])
resource.setrlimit(resource.RLIMIT_NPROC, (cfg["procs"], cfg["procs"]))
runner, fds = cfg["runner"], cfg["fds"]
del cfg, ctypes, json, resource
exec(compile(runner, "runner.py", "exec"), {"__name__": "__runner__", "FDS": fds})
"""

# The runner: executes the program, then answers calls (with to_plain and from_plain,
# whose source is prepended below). Untrusted once the program ran.
RUNNER_BODY = r"""
import json, os, sys
requests, replies = os.fdopen(FDS[0], "r"), os.fdopen(FDS[1], "w")
job = json.loads(requests.readline())
if job["mode"] == "stdin":
    exec(compile(job["program"], "solution.py", "exec"), {"__name__": "__main__"})
    sys.stdout.flush()
    os._exit(0)
env = {"__name__": "solution"}
exec(compile(job["program"], "solution.py", "exec"), env)
objects = {}
for line in requests:
    msg = json.loads(line)
    try:
        if "new" in msg:
            obj = env[msg["new"]](*from_plain(msg["args"], objects))
            objects[len(objects)] = obj
            out = {"ref": len(objects) - 1}
        else:
            if "obj" in msg:
                fn = getattr(objects[msg["obj"]], msg["fn"])
            elif msg["fn"] in env:
                fn = env[msg["fn"]]
            else:
                fn = getattr(env["Solution"](), msg["fn"])
            out = {"ok": to_plain(fn(*from_plain(msg["args"], objects)))}
    except BaseException as e:
        out = {"error": type(e).__name__, "message": str(e)[:200]}
    replies.write(json.dumps(dict(out, id=msg["id"])) + "\n")
    replies.flush()
"""


# -----------------------------------------------------------------------------
# Values across the boundary: plain JSON data, the same codec on both sides


class CandidateError(Exception):
    """The candidate raised, returned something that cannot cross, or did not answer."""


def to_plain(v, ref_of=None, depth=0):
    """A value as JSON data. Only exact builtin types cross (None, bool, int, float,
    str, list, tuple, set, frozenset, dict, bytes, complex), never a subclass;
    `ref_of(v)` may name a sandbox object (the judge's proxies)."""
    if depth > 64:
        raise ValueError("value nested too deep")
    t = type(v)
    if v is None or t in (bool, int, float, str):
        return v
    if t is list:
        return [to_plain(x, ref_of, depth + 1) for x in v]
    if t in (tuple, set, frozenset):
        return {{tuple: "t", set: "s", frozenset: "f"}[t]: [to_plain(x, ref_of, depth + 1) for x in v]}
    if t is dict:
        return {"d": [[to_plain(k, ref_of, depth + 1), to_plain(x, ref_of, depth + 1)] for k, x in v.items()]}
    if t is bytes:
        return {"b": v.hex()}
    if t is complex:
        return {"c": [v.real, v.imag]}
    ref = ref_of(v) if ref_of else None
    if ref is not None:
        return {"r": ref}
    raise TypeError("a " + t.__name__ + " cannot cross the sandbox boundary")


def from_plain(v, objects=None, depth=0):
    """JSON data (json.loads' output) back to plain values; {"r": k} is objects[k] where
    a table of sandbox objects is given (the runner), an error elsewhere (the judge)."""
    if depth > 64:
        raise ValueError("value nested too deep")
    if isinstance(v, list):
        return [from_plain(x, objects, depth + 1) for x in v]
    if not isinstance(v, dict):
        return v
    if len(v) != 1:
        raise ValueError("malformed value")
    [(tag, x)] = v.items()
    if tag == "d":
        return {from_plain(k, objects, depth + 1): from_plain(y, objects, depth + 1) for k, y in x}
    if tag in ("t", "s", "f"):
        return {"t": tuple, "s": set, "f": frozenset}[tag](from_plain(y, objects, depth + 1) for y in x)
    if tag == "b":
        return bytes.fromhex(x)
    if tag == "c":
        return complex(float(x[0]), float(x[1]))
    if tag == "r" and objects is not None:
        return objects[x]
    raise ValueError("malformed value")


RUNNER = inspect.getsource(to_plain) + "\n\n" + inspect.getsource(from_plain) + RUNNER_BODY


# -----------------------------------------------------------------------------
# The sandbox process and its channel


def _probe_mode():
    """'namespaces' when `unshare` can give the sandbox its own PID and mount
    namespaces here (checked by running a program in them), else 'process-group'."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return "process-group"
    try:
        with Sandbox("print(6 * 7)", "stdin", "namespaces") as box:
            out, code = box.run_stdin("")
        return "namespaces" if code == 0 and out.strip() == "42" else "process-group"
    except (OSError, CandidateError):  # unshare refused (no privilege), or the sandbox died at start
        _FAILURES["probe"] += 1
        return "process-group"


_MODE = []  # the isolation in use, probed once

# Infrastructure failures since the last take_failures(), by kind: a sandbox that could not
# start; a probe of namespaces that failed where `unshare` exists (the machine fell back to
# process groups); a time limit reached while the machine was loaded (load average above its
# cores), where the program may have been starved rather than slow.
FAILURE_KINDS = ("start", "probe", "deadline_loaded")
_FAILURES = dict.fromkeys(FAILURE_KINDS, 0)


def take_failures():
    """The infrastructure failures counted since the last call, by kind; the counts restart."""
    counts = dict(_FAILURES)
    _FAILURES.update(dict.fromkeys(FAILURE_KINDS, 0))
    return counts


def _time_limit():
    """A time limit reached: also an infrastructure failure when the machine was loaded."""
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        _FAILURES["deadline_loaded"] += 1


def mode():
    if not _MODE:
        _MODE.append(_probe_mode())
    return _MODE[0]


# -----------------------------------------------------------------------------
# A cgroup for the sandbox as a whole, where this judge may make one


def _cgroup_dirs():
    """Where this process may make child cgroups with memory and process limits:
    ("v2", [dir]) on a unified hierarchy whose memory and pids controllers are
    enabled for children, ("v1", [memory dir, pids dir]) on the legacy one, or
    (None, []) with the reason in cgroup_support()."""
    try:
        lines = [line.rstrip("\n").split(":", 2) for line in open("/proc/self/cgroup")]
    except OSError:
        return None, []
    unified = [path for hid, ctrls, path in lines if hid == "0" and ctrls == ""]
    if unified and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        own = "/sys/fs/cgroup" + unified[0]
        try:
            enabled = open(os.path.join(own, "cgroup.subtree_control")).read().split()
        except OSError:
            return None, []
        ok = {"memory", "pids"} <= set(enabled) and os.access(own, os.W_OK)
        return ("v2", [own]) if ok else (None, [])
    found = {}
    for _, ctrls, path in lines:
        for controller in ("memory", "pids"):
            if controller in ctrls.split(","):
                found[controller] = f"/sys/fs/cgroup/{controller}{path}"
    dirs = [found.get("memory"), found.get("pids")]
    if all(d and os.path.isdir(d) and os.access(d, os.W_OK) for d in dirs):
        return "v1", dirs
    return None, []


def cgroup_support():
    """One line: whether the sandbox as a whole is capped here, and how."""
    kind, dirs = _cgroup_dirs()
    if kind is None:
        return (
            "no cgroup for the sandbox (no writable cgroup with the memory and pids controllers here): "
            f"its processes are capped one by one ({CODE_MAX_PROCS} x {CODE_MEMORY_MB} MB)"
        )
    whole = f"{CODE_GROUP_MEMORY_MB} MB and {CODE_MAX_PROCS} processes"
    return f"cgroup {kind}: the sandbox as a whole may use {whole}"


_IDLE_GROUPS = []  # emptied groups kept for the next sandbox (a fresh group's first join is slow)


def _remove(dirs):
    for d in dirs:
        try:
            os.rmdir(d)
        except OSError:
            pass


def _empty(dirs):
    try:
        return all(not open(os.path.join(d, "cgroup.procs")).read().strip() for d in dirs)
    except OSError:
        return False


def release_groups():
    """Remove the idle groups (at exit, and wherever a test wants the tree clean), once
    their last processes are gone."""
    while _IDLE_GROUPS:
        dirs = _IDLE_GROUPS.pop()
        for _ in range(100):
            if _empty(dirs):
                break
            time.sleep(0.01)
        _remove(dirs)


atexit.register(release_groups)


class Group:
    """A cgroup for one sandbox at a time: a memory and a process limit for all its
    processes together. An emptied group waits for the next sandbox (release_groups()
    removes them). Does nothing where the machine gives none."""

    count = 0

    def __init__(self):
        for i, dirs in enumerate(_IDLE_GROUPS):  # an earlier sandbox's group whose processes are gone
            if _empty(dirs):
                self.dirs = _IDLE_GROUPS.pop(i)
                return
        kind, parents = _cgroup_dirs()
        Group.count += 1
        name = f"srpo-sandbox-{os.getpid()}-{Group.count}"
        self.dirs = []
        try:
            for parent in parents:
                path = os.path.join(parent, name)
                os.mkdir(path)
                self.dirs.append(path)
            limits = {
                "v2": {
                    "memory.max": CODE_GROUP_MEMORY_MB << 20,
                    "memory.swap.max": 0,
                    "pids.max": CODE_MAX_PROCS,
                },
                "v1": {"memory.limit_in_bytes": CODE_GROUP_MEMORY_MB << 20, "pids.max": CODE_MAX_PROCS},
            }.get(kind, {})
            for key, value in limits.items():
                target = next((d for d in self.dirs if os.path.exists(os.path.join(d, key))), None)
                if target is None and key != "memory.swap.max":
                    raise OSError(f"no {key}")
                if target:
                    with open(os.path.join(target, key), "w") as fh:
                        fh.write(str(value))
        except OSError:  # the machine would not give one after all: no group, as where there is none
            _remove(self.dirs)
            self.dirs = []

    def close(self):
        """Give the group back: the next sandbox takes it once its processes are gone."""
        if self.dirs:
            _IDLE_GROUPS.append(self.dirs)
        self.dirs = []


def _interpreter():
    """(python, drop to nobody): under root, an interpreter user nobody can run."""
    if os.geteuid() != 0:
        return sys.executable, False
    for candidate in (sys.executable, "/usr/bin/python3"):
        path = os.path.realpath(candidate)
        if os.path.exists(path) and all(os.stat(p).st_mode & 0o001 for p in _parents(path)):
            return candidate, True
    return sys.executable, False


def _parents(path):
    yield path
    while path != "/":
        path = os.path.dirname(path)
        yield path


def _hidden(python):
    """Folders covered by an empty tmpfs in the sandbox: the project (its tests and
    data) and the data caches, unless the interpreter lives inside one."""
    home = os.path.expanduser("~")
    folders = {
        PROJECT,
        os.getcwd(),
        os.path.join(home, ".cache"),
        os.environ.get("HF_HOME", ""),
        os.environ.get("HF_DATASETS_CACHE", ""),
        os.environ.get("XDG_CACHE_HOME", ""),
    }
    python = os.path.realpath(python)
    return sorted(
        f
        for f in folders
        if f and os.path.isdir(f) and f != "/" and not (python + "/").startswith(os.path.realpath(f) + "/")
    )


class Sandbox:
    """One sandbox process running `program` in `job_mode` "stdin" (the program reads
    the test's input) or "serve" (the runner answers calls). Use it as a context
    manager: on exit the process and everything it started are killed."""

    def __init__(self, program, job_mode, isolation=None, timeout=CODE_TIMEOUT_S):
        self.deadline = time.monotonic() + timeout
        isolation = isolation or mode()
        python, drop = _interpreter()
        namespaces = isolation == "namespaces"
        self.workdir = None if namespaces else tempfile.mkdtemp(prefix="srpo_code_")
        if self.workdir:
            os.chmod(self.workdir, 0o777)
        self.group = Group()  # memory and processes of the sandbox as a whole, where the machine allows
        req_r, self.req_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        cfg = {
            "mounts": namespaces,
            "hide": _hidden(python) if namespaces else [],
            "workdir": self.workdir,
            "memory_mb": CODE_MEMORY_MB,
            "cpu_s": int(timeout) + 1,
            "drop": drop,
            "lock": namespaces and os.geteuid() != 0,  # the judge in a user namespace: lock the mounts
            "nobody": NOBODY,
            "procs": CODE_MAX_PROCS,
            "runner": RUNNER,
            "fds": [req_r, rep_w],
            "cgroups": self.group.dirs,  # BOOT joins them first: everything it starts is inside
        }
        prefix = []
        if namespaces:
            prefix = [
                "unshare",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount",
                "--mount-proc",
                "--propagation",
                "private",
                "--net",  # no interface but a loopback of its own: the host's listeners are out of reach
                "--ipc",  # SysV and POSIX IPC of its own: nothing it creates outlives the test
                "--uts",
            ]
            prefix += [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
        # stdin tests: the program's own stdio
        piped = subprocess.PIPE if job_mode == "stdin" else subprocess.DEVNULL
        self.proc, self.buffer, self.next_id = None, b"", 0
        try:
            try:
                self.proc = subprocess.Popen(
                    prefix + [python, "-I", "-S", "-c", BOOT, json.dumps(cfg)],
                    stdin=piped,
                    stdout=piped,
                    stderr=subprocess.DEVNULL,
                    cwd="/",
                    env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONHASHSEED": "0"},
                    pass_fds=(req_r, rep_w),
                    start_new_session=True,
                )
            finally:  # only the sandbox holds these ends: a dead sandbox then reads as EOF / EPIPE here
                os.close(req_r)
                os.close(rep_w)
            self._send({"mode": job_mode, "program": program})
        except BaseException as e:  # it could not start, or died before reading its job: leave nothing behind
            if isinstance(e, OSError):  # the machine could not start it: not the program's doing
                _FAILURES["start"] += 1
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Kill the sandbox. In namespace mode its PID 1 is killed first: the kernel
        then kills everything it started, and unshare reaps it and exits."""
        if self.proc is not None:
            self._kill()
        for fd in (self.req_w, self.rep_r):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if getattr(self, "group", None):
            self.group.close()

    def _kill(self):
        if self.proc.poll() is None:
            for pid in _children(self.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                self.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the process group (all of it, in the fallback mode)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()

    def _send(self, msg):
        data = (json.dumps(msg) + "\n").encode()
        try:
            while data:
                _, ready, _ = select.select([], [self.req_w], [], max(0.0, self.deadline - time.monotonic()))
                if not ready:
                    raise CandidateError("time limit")
                data = data[os.write(self.req_w, data) :]
        except (BrokenPipeError, OSError) as e:
            raise CandidateError(f"the sandbox stopped reading ({e})") from None

    def _reply(self):
        while b"\n" not in self.buffer:
            left = self.deadline - time.monotonic()
            ready, _, _ = select.select([self.rep_r], [], [], max(0.0, left))
            if left <= 0 or not ready:
                _time_limit()
                raise CandidateError("time limit")
            chunk = os.read(self.rep_r, 65536)
            if not chunk:
                raise CandidateError("the sandbox exited without answering")
            self.buffer += chunk
            if len(self.buffer) > CODE_MAX_OUTPUT:
                raise CandidateError("reply too long")
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            raise CandidateError("malformed reply") from None

    def ask(self, msg):
        """One request, one reply (a dict: "ok", "ref" or "error"), matched by id."""
        msg["id"], self.next_id = self.next_id, self.next_id + 1
        self._send(msg)
        reply = self._reply()
        if not isinstance(reply, dict) or reply.get("id") != msg["id"]:
            raise CandidateError("reply out of order")
        return reply

    def run_stdin(self, text):
        """A stdin test: feed `text`, read at most CODE_MAX_OUTPUT bytes of stdout
        until the program exits or the time runs out. Returns (stdout, exit code)."""
        writer = threading.Thread(target=_feed, args=(self.proc.stdin, text.encode()), daemon=True)
        writer.start()
        out, fd = b"", self.proc.stdout.fileno()
        while True:
            left = self.deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if left <= 0 or not ready:
                _time_limit()
                return out.decode(errors="replace"), None  # time limit
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
            if len(out) > CODE_MAX_OUTPUT:
                return out.decode(errors="replace"), None  # flooding
        try:
            code = self.proc.wait(timeout=max(0.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            code = None
        return out.decode(errors="replace"), code


def _children(pid):
    """The direct children of process `pid` (Linux /proc), [] where unknown."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except (OSError, ValueError):
        return []


def _feed(pipe, data):
    try:
        pipe.write(data)
        pipe.close()
    except OSError:
        pass


def main():
    print(
        f"isolation: {mode()}"
        + ("" if mode() == "namespaces" else " (no PID/mount namespaces available here)")
    )
    program = (
        "import os\n"
        "print('pid', os.getpid(), 'uid', os.getuid(), 'cwd', os.getcwd(), 'tmp', os.listdir('/tmp'))"
    )
    with Sandbox(program, "stdin") as box:
        out, code = box.run_stdin("")
    print(f"a program sees: {out.strip()} (exit code {code})")
    print(cgroup_support())
    return mode()


if __name__ == "__main__":
    main()
