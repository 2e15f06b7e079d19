"""runs.py: a training run on disk. What grpo.py / rrpo.py / srpo.py write into
their run folder, how a run resumes from it, and how evaluation reads it back.

Paper map
  App. C     checkpoints: the LoRA adapter in PEFT format (what vLLM and
             PeftModel load), or the trained weights of a full fine-tune     save_checkpoint(), load_policy()
  App. H     per-step metrics (tokens, times, rewards), one JSON line a step
             and one printed line                                       append_jsonl(), log_line(), read_run()
  Sec. 5     the trained policies evaluated after training                   load_policy()

The run folder
  config.json      the resolved config the run started with (a resumed run keeps it)
  metrics.jsonl    one line per training step: {"step": k, "reward/base": ..., ...}
  eval.jsonl       one line per validation: {"step": updates done, "pass_rate": ..., "n": ...}
  resets.jsonl     RRPO / SRPO: one line per seed, the reset record (rrpo.reset_records)
  checkpoint/      adapter/ (PEFT), trainable.pt, optimizer.pt, rng.pt, state.json {"next_step", "config"}
  summary.json     means over the run's steps
  vllm-adapters/   the last adapters served to vLLM (vllm_engine.py)

Symbols
  run_dir      -> the run folder (--out)
  step         -> a metrics line's training step, 0-based; an eval line's number of updates done
  next_step    -> the step a resumed run continues from (checkpoint/state.json)

Choices, and why
  * A checkpoint is written to checkpoint.tmp and renamed, so a crash while
    saving leaves the previous checkpoint whole.
  * Resuming restores the weights, the optimizer and every RNG state, and drops
    the log lines written after the checkpoint, so a resumed run logs exactly
    what an uninterrupted one would (tests/test_training.py checks it).

Run it
  python runs.py runs/srpo-demo        # what a run folder holds: config, steps done, last validation
"""

import argparse
import copy
import json
import os
import random
import shutil
import sys

import numpy as np
import torch


def prepare(run_dir, config, overwrite=False):
    """A new run folder holding config.json (a dict). An existing run is kept
    unless `overwrite` (the CPU demos start afresh each time)."""
    if os.path.exists(os.path.join(run_dir, "checkpoint")) and not overwrite:
        sys.exit(f"{run_dir} already holds a run: pass --resume {run_dir} or choose another --out")
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "config.json"), "w") as fh:
        json.dump(config, fh, indent=2)


def read_config(run_dir):
    """The config dict a run folder was started with."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        sys.exit(f"{run_dir}: no config.json there, so it is not a run folder of ours")
    with open(path) as fh:
        return json.load(fh)


def append_jsonl(path, record):
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def save_checkpoint(model, optimizer, run_dir, step, config):
    """Adapter (PEFT format, loadable by PeftModel.from_pretrained and vLLM), trainable
    weights, optimizer and RNG states, and the next step (the data position)."""
    final = os.path.join(run_dir, "checkpoint")
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    if hasattr(model, "peft_config"):
        model.save_pretrained(os.path.join(tmp, "adapter"), save_embedding_layers=False)
    trainable = {
        k: v
        for k, v in model.state_dict().items()
        if k in {n for n, p in model.named_parameters() if p.requires_grad}
    }
    torch.save(trainable, os.path.join(tmp, "trainable.pt"))
    torch.save(optimizer.state_dict(), os.path.join(tmp, "optimizer.pt"))
    torch.save(
        {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
        os.path.join(tmp, "rng.pt"),
    )
    with open(os.path.join(tmp, "state.json"), "w") as fh:
        json.dump({"next_step": step, "config": config}, fh, indent=2)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def resume(model, optimizer, run_dir):
    """Restore the checkpoint (weights, optimizer, RNG states) and drop what the
    interrupted run logged past it; returns the step to continue from."""
    ckpt = os.path.join(run_dir, "checkpoint")
    model.load_state_dict(torch.load(os.path.join(ckpt, "trainable.pt")), strict=False)
    optimizer.load_state_dict(torch.load(os.path.join(ckpt, "optimizer.pt")))
    rng = torch.load(os.path.join(ckpt, "rng.pt"), weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    with open(os.path.join(ckpt, "state.json")) as fh:
        start = json.load(fh)["next_step"]
    # metrics lines carry their step, eval lines the number of steps done before them
    for path, last in (
        (os.path.join(run_dir, "metrics.jsonl"), start - 1),
        (os.path.join(run_dir, "resets.jsonl"), start - 1),
        (os.path.join(run_dir, "eval.jsonl"), start),
    ):
        kept = (
            [line for line in open(path) if json.loads(line)["step"] <= last] if os.path.exists(path) else []
        )
        with open(path, "w") as fh:
            fh.writelines(kept)
    print(f"resumed {run_dir} at step {start}")
    return start


def steps_done(run_dir):
    """Training steps the run's checkpoint holds (0 when it has none)."""
    path = os.path.join(run_dir, "checkpoint", "state.json")
    if not os.path.exists(path):
        return 0
    with open(path) as fh:
        return json.load(fh)["next_step"]


def summarize(history):
    """Closing summary: means over the steps of a run (NaN entries skipped)."""
    if not history:
        return {}
    keys = [
        "reward/base",
        "reward/suffix",
        "tokens/per_prompt",
        "time/step_s",
        "time/gen_s",
        "time/localize_s",
        "time/train_s",
        "time/fill",
        "time/underfilled_s",
        "groups/base_all_equal",
        "groups/suffix_all_equal",
        "signal/ratio",
    ]
    out = {"steps": len(history)}
    for k in keys:
        vals = [m[k] for m in history if k in m and m[k] == m[k]]  # skip NaN
        out[k] = float(np.mean(vals)) if vals else None
    return out


def log_line(m):
    """The one fixed-format line printed per training step."""
    return (
        f"step {m['step']:>4} | reward base {m['reward/base']:.3f} suffix {m['reward/suffix']:.3f} | "
        f"loss {m['train/loss']:+.4f} gnorm {m['train/grad_norm']:.3f} | "
        f"tok base {m['tokens/base']} suffix {m['tokens/suffix']} loc {m['tokens/localize']} | "
        f"gen {m['time/gen_s']:.1f}s loc {m['time/localize_s']:.1f}s train {m['time/train_s']:.1f}s "
        f"step {m['time/step_s']:.1f}s | fill {m.get('time/fill', float('nan')):.2f}"
    )


def finish(run_dir, method, history, n_validation=0):
    """summary.json and the closing lines: means over the steps, the validation curve's ends."""
    summary = summarize(history)
    with open(os.path.join(run_dir, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    where = (
        "checkpoint/adapter, PEFT format"
        if os.path.exists(os.path.join(run_dir, "checkpoint", "adapter"))
        else "checkpoint/trainable.pt"
    )
    print(f"\n{method} done: {json.dumps(summary)}\nrun folder: {run_dir}  (weights in {where})")
    path = os.path.join(run_dir, "eval.jsonl")
    evals = [json.loads(line) for line in open(path)] if os.path.exists(path) else []
    if len(evals) > 1:
        print(
            f"{method}: validation pass rate {evals[0]['pass_rate']:.3f} at step {evals[0]['step']} -> "
            f"{evals[-1]['pass_rate']:.3f} at step {evals[-1]['step']} "
            f"({n_validation} held-out problems, greedy)"
        )
    return summary


def read_run(run_dir):
    """(config, metrics per step, validation lines) of a run folder."""
    config = read_config(run_dir)
    metrics = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    evals = []
    if os.path.exists(os.path.join(run_dir, "eval.jsonl")):
        evals = [json.loads(line) for line in open(os.path.join(run_dir, "eval.jsonl"))]
    return config, metrics, evals


def load_policy(base_model, run_dir):
    """The policy a training run ended with: its LoRA adapter on the base model, or,
    for a full fine-tune (--full-finetune, the classroom world), its trained weights
    loaded into a copy of the base model."""
    adapter = os.path.join(run_dir, "checkpoint", "adapter")
    if os.path.exists(adapter):
        from peft import PeftModel

        return PeftModel.from_pretrained(base_model, adapter).eval()
    weights = os.path.join(run_dir, "checkpoint", "trainable.pt")
    if not os.path.exists(weights):
        raise FileNotFoundError(
            f"{run_dir} holds no checkpoint/adapter nor checkpoint/trainable.pt: not a finished training run"
        )
    policy = copy.deepcopy(base_model)
    missing, unexpected = policy.load_state_dict(torch.load(weights), strict=False)
    if unexpected:
        raise ValueError(f"{run_dir} was trained on another model: unknown weights {unexpected[:3]}")
    return policy.eval()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Show what a training run folder holds")
    parser.add_argument("run_dir", help="a run folder written by grpo.py, rrpo.py or srpo.py")
    args = parser.parse_args(argv)
    config, metrics, evals = read_run(args.run_dir)
    print(f"{config['method']} on {config['model']}: {len(metrics)} steps logged")
    if evals:
        print(
            f"validation pass rate {evals[0]['pass_rate']:.3f} at step {evals[0]['step']} -> "
            f"{evals[-1]['pass_rate']:.3f} at step {evals[-1]['step']}"
        )
    print(json.dumps(summarize(metrics), indent=2))
    return config, metrics, evals


if __name__ == "__main__":
    main()
