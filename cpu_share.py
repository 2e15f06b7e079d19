"""cpu_share.py: how many CPU threads a training run gives torch, shared with the
other training runs of this project on the same machine.

Not a part of the paper: machinery for small machines. torch starts as many
OpenMP threads as there are cores, and OpenMP's threads spin while they wait for
work, so two runs side by side on 2 cores do not share the machine, they fight
for it: in our measurements a classroom SRPO step went from about 0.6 s alone to
37-58 s each (docs/performance.md). A passive wait policy (OMP_WAIT_POLICY=PASSIVE)
ends the fight but nearly doubles a run's time alone, since the classroom
world's operations are small and every one wakes sleeping threads. So each run
here registers itself (a file named by its process id under the cache folder),
and before each training step takes cores // (live registered runs) threads:
alone it keeps every core, two runs on 2 cores take one each.

Paper map
  (ours)    sharing the CPU between runs side by side                      claim(), Share
  (ours)    the same for scripts that are not training runs                 for_script()

Symbols
  cores     -> the cores this process may run on (os.sched_getaffinity)
  runs      -> live processes registered under CACHE_DIR/runs-on-cpu (this one included)
  threads   -> max(1, cores // runs), or SRPO_THREADS (then fixed) when set

Choices
  * SRPO_THREADS=N fixes the count (no sharing); OMP_NUM_THREADS=N, torch's
    own variable, does the same.
  * The thread count changes float rounding, not the samples we have seen:
    the classroom SRPO demo with 1 and with 2 threads drew the same tokens in
    all 100 steps, and its losses differed by at most 5e-8.
  * Only this project's training runs count: another program's threads (or a
    run of another user, whose cache folder differs) are not seen.

Run it
  python srpo.py --demo & python srpo.py --demo --out runs/second   # each prints "threads: 1 ..."
"""

import atexit
import os

import torch

import models

REGISTRY = os.path.join(models.CACHE_DIR, "runs-on-cpu")


def fixed_threads():
    """The thread count the user fixed (SRPO_THREADS, else OMP_NUM_THREADS), or None."""
    for name in ("SRPO_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value), name
    return None


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process with that id
        return True
    return True


def live_runs():
    """Process ids of the registered runs still alive (stale files are removed)."""
    pids = []
    for name in os.listdir(REGISTRY) if os.path.isdir(REGISTRY) else []:
        if not name.isdigit():
            continue
        if alive(int(name)):
            pids.append(int(name))
        else:
            try:
                os.remove(os.path.join(REGISTRY, name))
            except FileNotFoundError:
                pass
    return pids


def cores():
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Share:
    """This process's registration: refresh() sets torch's threads to its share."""

    def __init__(self):
        self.cores = cores()
        self.fixed = fixed_threads()
        self.path = os.path.join(REGISTRY, str(os.getpid()))
        self.threads = None
        if not self.fixed:
            os.makedirs(REGISTRY, exist_ok=True)
            open(self.path, "w").close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def release(self):
        if not self.fixed:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass

    def refresh(self):
        """Set torch's thread count to this run's share; a line saying so when it changed, else None."""
        if self.fixed:
            threads, why = self.fixed[0], f"fixed by {self.fixed[1]}"
        else:
            runs = max(1, len(live_runs()))
            threads = max(1, self.cores // runs)
            why = f"{self.cores} cores, {runs} run{'s' if runs > 1 else ''} of this project on them"
        if threads == self.threads:
            return None
        torch.set_num_threads(threads)
        self.threads = threads
        return f"threads: {threads} ({why}; SRPO_THREADS=N fixes the count)"


def claim():
    """Register this process as a training run; use as `with claim() as share:`."""
    return Share()


def for_script():
    """For a script that is not a training loop (a world build and report, a demo, a
    benchmark): register it like a run for the rest of the process and set its share once,
    printing the choice. A count fixed by SRPO_THREADS or OMP_NUM_THREADS is kept, so a
    test process that fixed its share keeps it."""
    share = Share()
    atexit.register(share.release)
    print(share.refresh())
    return share
