"""bench_trl.py is a benchmark, not a test; here only what a user meets first:
without TRL it stops with the install line, and it asks TRL for our workload."""

import sys

import pytest

import bench_trl
import config


def test_missing_trl_stops_with_the_install_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "trl", None)  # `import trl` raises ImportError
    with pytest.raises(SystemExit, match=r"pip install trl==1\.16\.0"):
        bench_trl.theirs(1, str(tmp_path), 0)


def test_the_workload_is_our_smollm2_demo():

    cfg = config.parse_config(["--demo", "smollm2-135m"], "grpo")
    assert (cfg.prompts_per_step, cfg.group_size, cfg.thought.max_response_tokens) == (
        bench_trl.PROMPTS,
        bench_trl.G,
        bench_trl.MAX_NEW,
    )
    assert (cfg.thought.temperature, cfg.thought.top_p, cfg.lora_rank, cfg.lora_alpha) == (0.7, 0.95, 64, 64)
