"""bench_trl.py: our GRPO step against TRL's GRPOTrainer on the same CPU workload
(App. H: what a training step costs).

Researchers choose RL code by throughput, and most would otherwise reach for
TRL's GRPOTrainer. This script runs both on one workload: the bundled
SmolLM2-135M-Instruct, the bundled problems in the same order, G = 8 rollouts
of 2 prompts a step, one optimizer step per prompt (our --minibatch-prompts 1;
TRL's steps_per_generation = 2), LoRA rank 64 / alpha 64 on every linear layer,
learning rate 1e-4, no KL term, temperature 0.7, top-p 0.95, at most 120 new
tokens per rollout. It reports tokens per second of the whole step (generation
plus update) for each, in one run. This is a benchmark, not a test.

Paper map
  App. H, Tables 7-8   the cost of a training step: tokens generated and wall clock   ours(), theirs()
  Sec. 4.3             the loss both sides minimise: per-rollout token mean of A_i log pi,
                       then the mean over rollouts (TRL: loss_type="grpo", beta=0)

Symbols
  G        -> num_generations (TRL) / --group-size (ours) = 8
  tok/s    -> generated response tokens / wall clock of the training steps (setup excluded)

Deviations, and why
  * TRL samples each completion in one unstructured generate call that stops at
    the end token or 120 tokens; ours samples thought by thought (3 thoughts of
    at most 40 tokens, the `</thought>` stop string). Token counts therefore
    differ; tokens per second is the comparable figure.
  * Both sides compute in float32. TRL's GRPOConfig defaults to bf16=True;
    on this machine's CPU (AVX2, no bfloat16 units) that ran the same 4 TRL
    steps at 1.6 tokens/s instead of float32's, so the script turns it off.
  * Our trainer skips the backward pass of rollouts whose advantage is 0 (a
    group with all rewards equal); TRL computes it. When every group is
    all-equal, as with the bundled SmolLM2 on most steps, our step is its
    generation alone; the table gives our training seconds beside the total.
  * TRL stays out of requirements.txt: install it beside the project with
    `pip install trl==1.16.0`; without it the script says so and stops.

Run it
  pip install trl==1.16.0 && python bench_trl.py --steps 4     # both, one run each; a table at the end
"""

import argparse
import json
import os
import time

import config
import grpo
import models
import thought_mdp as tm

STEPS, PROMPTS, G, MAX_NEW = 4, 2, 8, 120


def ours(steps, out, key):
    """Our GRPO with the smollm2-135m demo preset (which is this workload); tok/s from metrics.jsonl."""
    grpo.main(
        [
            "--demo",
            "smollm2-135m",
            "--max-steps",
            str(steps),
            "--out",
            out,
            "--run-key",
            str(key),
            "--eval-every",
            "0",
            "--save-every",
            str(10**6),
        ]
    )
    history = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    tokens, seconds = sum(m["tokens/base"] for m in history), sum(m["time/step_s"] for m in history)
    return {
        "tokens": tokens,
        "seconds": seconds,
        "tok_s": tokens / seconds,
        "train_s": sum(m["time/train_s"] for m in history),
    }


def theirs(steps, out, key):
    """TRL's GRPOTrainer on the same prompts in the same order; tok/s from a callback's clock
    around the training steps and the completions' lengths seen by the reward function."""
    try:
        from trl import GRPOConfig, GRPOTrainer
    except ImportError:
        raise SystemExit("TRL is not installed: pip install trl==1.16.0 (it stays out of requirements.txt)")
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback

    import rewards

    cfg = config.parse_config(["--demo", "smollm2-135m", "--run-key", str(key)], "grpo")
    problems = tm.load_problems()
    order = [
        p for step in range(steps) for p in grpo.step_problems(problems, cfg, step)
    ]  # our prompts, our order
    rows = [
        {
            "prompt": [{"role": "user", "content": tm.ROLLOUT_PROMPT.format(question=tm.format_question(p))}],
            "problem": json.dumps(p),
        }
        for p in order
    ]
    counted = {"tokens": 0}

    def reward(completions, problem, completion_ids, **kw):
        counted["tokens"] += sum(len(ids) for ids in completion_ids)
        return [
            rewards.score(json.loads(p), c[0]["content"] if isinstance(c, list) else c)
            for p, c in zip(problem, completions)
        ]

    clock = {}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            clock.setdefault("start", time.perf_counter())

        def on_train_end(self, args, state, control, **kw):
            clock["end"] = time.perf_counter()

    # bf16: TRL's default; on a CPU without bfloat16 units ~30x slower
    args = GRPOConfig(
        output_dir=out,
        per_device_train_batch_size=G,
        steps_per_generation=PROMPTS,
        num_generations=G,
        max_completion_length=MAX_NEW,
        temperature=0.7,
        top_p=0.95,
        learning_rate=cfg.lr,
        beta=0.0,
        loss_type="grpo",
        scale_rewards="group",
        max_steps=steps * PROMPTS,
        shuffle_dataset=False,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=key,
    )
    lora = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        target_modules="all-linear",
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )
    trainer = GRPOTrainer(
        model=models.convert_gguf("smollm2-135m"),
        reward_funcs=[reward],
        args=args,
        train_dataset=Dataset.from_list(rows),
        peft_config=lora,
        callbacks=[Clock()],
    )
    trainer.train()
    seconds = clock["end"] - clock["start"]
    return {"tokens": counted["tokens"], "seconds": seconds, "tok_s": counted["tokens"] / seconds}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Our GRPO step against TRL's GRPOTrainer, same CPU workload")
    parser.add_argument(
        "--steps", type=int, default=STEPS, help="training steps (2 prompts x 8 rollouts each)"
    )
    parser.add_argument(
        "--run-key", "--seed", type=int, default=0, help="the random key (--seed: its old name, deprecated)"
    )
    parser.add_argument("--out", default="runs/bench-trl", help="output folder")
    args = parser.parse_args(argv)
    result = {
        "ours": ours(args.steps, os.path.join(args.out, "ours"), args.run_key),
        "trl": theirs(args.steps, os.path.join(args.out, "trl"), args.run_key),
    }
    lines = [
        "| trainer | generated tokens | wall clock of the steps | of which training | tokens / s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in result.items():
        train = f"{r['train_s']:.1f} s" if "train_s" in r else "-"
        lines.append(f"| {name} | {r['tokens']} | {r['seconds']:.1f} s | {train} | {r['tok_s']:.1f} |")
    print("\n".join(lines))
    with open(os.path.join(args.out, "bench_trl.json"), "w") as fh:
        json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
