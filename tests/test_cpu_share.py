"""cpu_share.py: runs side by side split the cores; a fixed count is kept."""

import os
import subprocess
import sys

import torch

import cpu_share


def test_runs_side_by_side_split_the_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_share, "REGISTRY", str(tmp_path))
    for name in ("SRPO_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    try:
        with cpu_share.claim() as share:
            share.cores = 2
            assert (tmp_path / str(os.getpid())).exists()
            assert "threads: 2 (2 cores, 1 run " in share.refresh() and torch.get_num_threads() == 2
            assert share.refresh() is None  # nothing changed, nothing said
            (tmp_path / str(os.getppid())).touch()  # another live run (our parent process)
            gone = subprocess.run(
                [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
            )
            (tmp_path / gone.stdout.decode().strip()).touch()  # a run that ended without removing its file
            assert "threads: 1 (2 cores, 2 runs" in share.refresh() and torch.get_num_threads() == 1
            assert not (tmp_path / gone.stdout.decode().strip()).exists()
        assert not (tmp_path / str(os.getpid())).exists()  # released on leaving
        monkeypatch.setenv("SRPO_THREADS", "1")
        with cpu_share.claim() as fixed:
            assert "fixed by SRPO_THREADS" in fixed.refresh() and not (tmp_path / str(os.getpid())).exists()
    finally:
        torch.set_num_threads(before)


def test_a_script_keeps_a_fixed_count_and_otherwise_takes_its_share(tmp_path, monkeypatch, capsys):
    """The world's report, the Thought MDP demo and the engine demo call for_script(): with
    SRPO_THREADS set (as each test process sets it) they keep that count, where they once
    set every core and left the test process fighting its neighbour for them."""
    monkeypatch.setattr(cpu_share, "REGISTRY", str(tmp_path))
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("SRPO_THREADS", "1")
        cpu_share.for_script()
        assert torch.get_num_threads() == 1 and not (tmp_path / str(os.getpid())).exists()
        assert "fixed by SRPO_THREADS" in capsys.readouterr().out
        monkeypatch.delenv("SRPO_THREADS")
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        (tmp_path / str(os.getppid())).touch()  # a training run beside it (our parent process)
        share = cpu_share.for_script()
        assert (tmp_path / str(os.getpid())).exists()  # registered, so the run beside sees it
        assert torch.get_num_threads() == max(1, cpu_share.cores() // 2)
        share.release()
    finally:
        torch.set_num_threads(before)
