"""grpo.py: the policy, group-relative advantages, the loss of Sec. 4.3, and the training loop.

GRPO is the base group alone: G iid rollouts per prompt in the Thought MDP,
advantages normalised within the group, the policy-gradient loss averaged per
token of each rollout and then over rollouts. rrpo.py and srpo.py reuse all of
this and change only the rollout buffer (`build_buffer`).

Paper map
  Sec. 4.3, Alg. 2 lines 8-10   A_i = (r_i - mean(r_k)) / std(r_k) per group k     group_advantages()
  Sec. 4.3, Alg. 2 line 11      L = -(1/N) sum_i (1/T_i) sum_t A_i log pi(y_it)
                                over each rollout's active tokens                   pg_loss()
  App. C, Table 4               optional PPO-style clip against rollout-time
                                log-probabilities (off by default)                  pg_loss(clip_eps=...)
  App. C, Table 5               LoRA r = alpha = 64 on all linear layers; AdamW
                                5e-5, (0.9, 0.999), wd 0.01; clip 1.0; 32 prompts a
                                step, mini-batches of 8, one epoch; G = 8; T = 0.7,
                                top-p 0.95; 2 epochs                                Config (the CLI defaults)
  App. G                        per-token gradient signal g_it = |A_i| / T_i (1 - pi)  gradient_signal()
  App. H                        tokens and times per step                           the metrics of main()
  Sec. 5, Fig. 3                validation pass rate every `--eval-every` steps
                                (evaluate.validate, into eval.jsonl)                the evaluation hook of main()

Symbols (B prompts, G group size, N rollouts in a mini-batch, T tokens, V vocabulary)
  r_i                 -> rewards        (G,) per group
  A_i                 -> advantages     (G,) per group; (N,) in the loss
  log pi(y_it | ...)  -> logp           (N, T)
  active tokens       -> mask           (N, T) 1 on a rollout's own response tokens
  T_i                 -> mask.sum(1)    (N,)
  g_it                -> gradient_signal()

Deviations and choices
  * log pi is computed from the logits divided by the sampling temperature, the
    distribution the rollouts were drawn from (top-p truncation is ignored, as
    usual). No KL term and no clipping by default (App. C).
  * Rollouts with A_i = 0 contribute nothing to the gradient; they are counted
    in N but not forwarded, which changes nothing but the time.
  * N in pg_loss is all rollouts of the mini-batch (every group of its prompts);
    the paper's 1/G per group is the same when every group has G rollouts.
  * Training problems (`--data`): by default the 400 NuminaMath-Olympiads
    training problems through evaluate.py's loader (needs the Hub); the demo
    uses the classroom world's training chains; any JSONL file of problems works.
  * One process. On GPUs (`--engine vllm`, gpus.py) vLLM generates from the base
    weights plus this step's adapter, saved to a new folder every step, and the
    trainer's layers are spread over the GPUs by accelerate's device map;
    `build_buffer` only needs an engine with the interface of thought_mdp.py.

Run it
  python grpo.py --demo                          # CPU: the classroom world (tiny_world.py), a few minutes
  python grpo.py --demo smollm2-135m             # CPU: bundled SmolLM2 on the bundled problems (smoke run)
  python grpo.py --model allenai/OLMo-3-7B-Instruct   # paper settings (GPU, Hub access)
  python grpo.py --resume runs/grpo-demo         # continue a run from its last checkpoint
"""

import argparse
import dataclasses
import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

import gpus
import thought_mdp as tm


@dataclass
class Config:
    # model and policy
    model: str = "allenai/OLMo-3-7B-Instruct"  # Hub id, local folder, or a bundled name (smollm2-135m)
    lora_rank: int = 64  # LoRA r (App. C)
    lora_alpha: int = 64  # LoRA alpha
    full_finetune: bool = False  # train every weight instead of a LoRA adapter (tiny models)
    # optimisation (App. C, Table 5)
    lr: float = 5e-5  # AdamW learning rate, constant, no warm-up
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # l2 gradient clipping
    clip_eps: float = 0.0  # PPO-style ratio clip; 0 = off (App. C, Table 4)
    # schedule
    data: str = "numina-olympiads-train"  # a benchmark of evaluate.py, "bundled", or a JSONL file of problems
    train_problems: int = 400  # problems drawn (seeded) from the data
    epochs: int = 2
    prompts_per_step: int = 32  # B, prompts per training step
    minibatch_prompts: int = 8  # prompts per optimizer step (one epoch over the step's buffer)
    max_steps: int = 0  # stop after this many steps (0 = all epochs)
    # rollouts (Sec. 4.1-4.2, App. C)
    group_size: int = 8  # G, rollouts per prompt in total
    split: str = "1x4"  # RRPO/SRPO budget split: 1x4, 2x4 or 1x8 (GRPO ignores it)
    seed_budget: int = 16  # rollouts per prompt the seed search may sample before falling back to GRPO
    temperature: float = 0.7
    top_p: float = 0.95
    max_thoughts: int = 20
    max_thought_tokens: int = 256
    max_response_tokens: int = 4096
    max_prompt_tokens: int = 2048
    gen_batch_size: int = 32  # rows decoded at once by the HF engine
    # GPUs (gpus.py)
    engine: str = "auto"  # hf | vllm | auto (vllm when it imports and a GPU is present)
    tp: int = 1  # vLLM tensor parallel size = GPUs used (the trainer is spread over the same GPUs)
    vllm_memory: float = 0.45  # fraction of each GPU's memory vLLM may take (weights + KV cache)
    vllm_sleep: bool = False  # vLLM sleep mode level 1 while the trainer runs
    train_microbatch: int = 4  # rollouts per forward/backward pass (memory)
    # run
    seed: int = 0
    out: str = ""  # run folder (default runs/<method>, runs/<method>-demo[-<preset>])
    save_every: int = 10  # checkpoint every N steps (and at the end)
    eval_every: int = 0  # validation pass rate every N steps into eval.jsonl (0 = off)
    eval_data: str = "bundled"  # validation problems: a benchmark of evaluate.py or a JSONL file
    eval_n: int = 32  # validation problems used (seeded sample)
    resume: str = ""  # run folder to continue from its checkpoint
    demo: str = ""  # a small CPU preset (see DEMOS): "tiny-world" or "smollm2-135m"
    method: str = "grpo"  # set by the script: grpo, rrpo or srpo


# The CPU demos. `--demo` (the README's first command) trains the classroom
# world's warm-started 1M-parameter model (tiny_world.py) in full, 8 prompts a
# step, caps that fit its 3-4 step chains, and tracks the greedy pass rate on
# 128 held-out chains; it learns visibly in a few minutes. `--demo smollm2-135m`
# runs the bundled pretrained SmolLM2-135M-Instruct on the bundled problems: a
# smoke run of the real-model path (it seldom uses the thought format, so it
# shows the machinery, not learning). Everything else stays as above.
DEMOS = {
    "tiny-world": dict(model="tiny-world", data="tiny-world-train", train_problems=4000, eval_data="tiny-world",
                       eval_n=128, eval_every=10, max_steps=100, full_finetune=True, lr=1e-4, prompts_per_step=8,
                       minibatch_prompts=4, max_thoughts=6, max_thought_tokens=24, max_response_tokens=96,
                       gen_batch_size=64, train_microbatch=16, save_every=50),
    "smollm2-135m": dict(model="smollm2-135m", data="bundled", prompts_per_step=2, minibatch_prompts=1, max_steps=4,
                         max_thoughts=3, max_thought_tokens=40, max_response_tokens=120, gen_batch_size=16, lr=1e-4,
                         save_every=2, eval_every=2, eval_n=6),
}


def parse_config(argv=None, method="grpo"):
    parser = argparse.ArgumentParser(description=f"{method.upper()} training in the Thought MDP")
    for f in dataclasses.fields(Config):
        if f.name == "method":
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name == "demo":
            parser.add_argument(flag, nargs="?", const="tiny-world", default=None, choices=sorted(DEMOS),
                                help="a small CPU preset: tiny-world (default) or smollm2-135m")
        elif f.name == "engine":
            parser.add_argument(flag, choices=gpus.ENGINES, default=None,
                                help="auto: vllm when it imports and a GPU is present, else hf")
        elif f.type is bool:
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, type=f.type, default=None)
    args = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None and v is not False}
    if args.get("resume"):  # a resumed run keeps its own config
        with open(os.path.join(args["resume"], "config.json")) as fh:
            saved = json.load(fh)
        saved.update(resume=args["resume"], max_steps=args.get("max_steps", saved["max_steps"]))
        return Config(**saved)
    cfg = Config(method=method)
    if args.get("demo"):
        cfg = dataclasses.replace(cfg, **DEMOS[args["demo"]])
    cfg = dataclasses.replace(cfg, **args)
    suffix = {"": "", "tiny-world": "-demo"}.get(cfg.demo, "-demo-" + cfg.demo)
    cfg.out = cfg.out or os.path.join("runs", method + suffix)
    assert cfg.prompts_per_step % cfg.minibatch_prompts == 0, "a step splits into whole mini-batches"
    return cfg


def thought_config(cfg):
    return tm.ThoughtConfig(cfg.max_thoughts, cfg.max_thought_tokens, cfg.max_response_tokens,
                            cfg.max_prompt_tokens, cfg.temperature, cfg.top_p)


# -----------------------------------------------------------------------------
# Sec. 4.3: advantages and the loss


def group_advantages(rewards):
    """Alg. 2, line 9: (r - mean) / std within one group; zeros when all rewards are equal."""
    r = torch.as_tensor(rewards, dtype=torch.float32)  # (G,)
    std = r.std(unbiased=False) if len(r) > 1 else torch.tensor(0.0)
    if std < 1e-8:  # no outcome difference, no signal (never NaN)
        return torch.zeros_like(r)
    return (r - r.mean()) / std  # (G,)


def pg_loss(logp, adv, mask, logp_old=None, clip_eps=0.0):
    """Sec. 4.3: -(1/N) sum_i (1/T_i) sum_t mask_it A_i log pi(y_it), for logp (N, T),
    adv (N,), mask (N, T). With clip_eps > 0 and logp_old (N, T), the per-token term
    is PPO's clipped surrogate min(rho A, clip(rho, 1 -+ eps) A) instead (App. C, Table 4)."""
    assert logp.shape == mask.shape and adv.shape == logp.shape[:1], "logp, mask (N, T); adv (N,)"
    T_i = mask.sum(1).clamp(min=1)  # (N,) active tokens per rollout
    if clip_eps > 0:
        rho = torch.exp(logp - logp_old)  # (N, T)
        per_token = torch.minimum(rho * adv[:, None], rho.clamp(1 - clip_eps, 1 + clip_eps) * adv[:, None])
    else:
        per_token = adv[:, None] * logp  # (N, T)
    objective = ((per_token * mask).sum(1) / T_i).mean()  # token mean per rollout, then mean over rollouts
    return -objective


def gradient_signal(logp, adv, mask):
    """App. G: g-bar_i = (1/T_i) sum_t (|A_i| / T_i)(1 - pi(y_it)) over active tokens; (N,)."""
    T_i = mask.sum(1).clamp(min=1)  # (N,)
    g = adv.abs()[:, None] / T_i[:, None] * (1 - logp.exp())  # (N, T)
    return (g * mask).sum(1) / T_i


# -----------------------------------------------------------------------------
# The rollout buffer: groups of rollouts with their advantages


@dataclass
class Group:
    prompt: int  # index of the prompt in the step's batch
    kind: str  # "base" (from x_0) or "suffix" (from a reset state x*)
    rollouts: list
    advantages: torch.Tensor = None  # (len(rollouts),)

    def __post_init__(self):
        self.advantages = group_advantages([r.reward for r in self.rollouts])


def step_seed(cfg, step, phase):
    """Per-call sampling seeds derived from (seed, step, phase), so runs repeat on CPU."""
    return (cfg.seed * 1_000_003 + step * 1009 + phase * 97) % (2**31)


def build_buffer(engine, problems, cfg, step):
    """GRPO: one base group of G iid rollouts from each prompt x_0."""
    tcfg = thought_config(cfg)
    start = time.perf_counter()
    states = [tm.initial_state(engine.tokenizer, p, tcfg) for p in problems]
    rollouts = tm.sample_rollouts(engine, states, cfg.group_size, tcfg, step_seed(cfg, step, 0))
    G = cfg.group_size
    groups = [Group(b, "base", rollouts[b * G:(b + 1) * G]) for b in range(len(problems))]
    stats = {"tokens/base": sum(len(r.response_ids) for r in rollouts), "tokens/suffix": 0, "tokens/localize": 0,
             "time/gen_s": time.perf_counter() - start, "time/localize_s": 0.0, "rollouts/generated": len(rollouts)}
    return groups, stats


# -----------------------------------------------------------------------------
# The update


def token_logprobs(model, rollouts, pad_id, temperature):
    """log pi(y_t | prefix) of every response token, and the active-token mask.
    Rows are left-padded so that the response positions are the last K columns.
    Returns logp (n, K) and mask (n, K) with K the longest response."""
    K = max(len(r.response_ids) for r in rollouts)
    width = max(len(r.prompt_ids) + len(r.response_ids) for r in rollouts)
    ids = torch.full((len(rollouts), width), pad_id, dtype=torch.long)  # (n, L)
    attention = torch.zeros((len(rollouts), width), dtype=torch.long)  # (n, L)
    mask = torch.zeros((len(rollouts), K))  # (n, K)
    for i, r in enumerate(rollouts):
        seq = r.prompt_ids + r.response_ids
        ids[i, width - len(seq):] = torch.tensor(seq)
        attention[i, width - len(seq):] = 1
        mask[i, K - len(r.response_ids):] = torch.tensor(r.own_mask, dtype=torch.float)  # prefix of x* masked
    device = next(model.parameters()).device
    ids, attention, mask = ids.to(device), attention.to(device), mask.to(device)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=attention, position_ids=positions,
                   logits_to_keep=K + 1).logits[:, :-1]  # (n, K, V): position t predicts token t+1
    targets = ids[:, width - K:]  # (n, K) the response tokens (and pads to the left, masked)
    # float32 log-softmax in chunks of positions, recomputed in the backward pass: a float32
    # (n, K, V) tensor would take 15 GB for 4 rollouts x 6k tokens x Qwen's 152k vocabulary
    from torch.utils.checkpoint import checkpoint
    chunks = [checkpoint(chosen_logprobs, logits[:, k:k + LOGP_CHUNK], targets[:, k:k + LOGP_CHUNK], temperature,
                         use_reentrant=False) for k in range(0, K, LOGP_CHUNK)]
    return torch.cat(chunks, 1), mask  # (n, K), (n, K)


LOGP_CHUNK = 512  # positions per float32 log-softmax chunk


def chosen_logprobs(logits, targets, temperature):
    """log softmax(logits / T) at the target ids: (n, k, V), (n, k) -> (n, k)."""
    return torch.log_softmax(logits.float() / temperature, -1).gather(-1, targets[..., None]).squeeze(-1)


def train_on_buffer(model, optimizer, groups, cfg, pad_id):
    """Alg. 2, line 11: one epoch over the step's buffer in mini-batches of
    `minibatch_prompts` prompts, one optimizer step each. Returns metrics."""
    params = [p for p in model.parameters() if p.requires_grad]
    prompts = sorted({g.prompt for g in groups})
    losses, norms, signal = [], [], {"base": {}, "suffix": {}}
    old = {}
    if cfg.clip_eps > 0:  # rollout-time log-probabilities: the policy before this step's updates
        with torch.no_grad():
            for g in groups:
                for i, r in enumerate(g.rollouts):
                    if g.advantages[i] != 0:
                        old[id(r)] = token_logprobs(model, [r], pad_id, cfg.temperature)[0][0]
    model.train()
    for start in range(0, len(prompts), cfg.minibatch_prompts):
        chosen = set(prompts[start:start + cfg.minibatch_prompts])
        items = [(g, r, g.advantages[i]) for g in groups if g.prompt in chosen for i, r in enumerate(g.rollouts)]
        N = len(items)
        active = [(g, r, a) for g, r, a in items if a != 0]  # A_i = 0 adds nothing to the gradient
        optimizer.zero_grad(set_to_none=True)
        loss_total = 0.0
        for m in range(0, len(active), cfg.train_microbatch):
            micro = active[m:m + cfg.train_microbatch]
            logp, mask = token_logprobs(model, [r for _, r, _ in micro], pad_id, cfg.temperature)  # (n, K)
            adv = torch.stack([a for _, _, a in micro]).to(logp.device)  # (n,)
            logp_old = None
            if cfg.clip_eps > 0:
                logp_old = torch.zeros_like(logp)
                for i, (_, r, _) in enumerate(micro):
                    logp_old[i, logp.shape[1] - len(old[id(r)]):] = old[id(r)]
            loss = pg_loss(logp, adv, mask, logp_old, cfg.clip_eps) * len(micro) / N  # share of the 1/N mean
            loss.backward()
            loss_total += loss.item()
            with torch.no_grad():  # App. G, from the logits of this very update
                for (g, r, _), g_bar in zip(micro, gradient_signal(logp.detach(), adv, mask).tolist()):
                    signal[g.kind].setdefault(g.prompt, []).append(g_bar)
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip) if active else torch.tensor(0.0)
        if active:
            optimizer.step()
        losses.append(loss_total)
        norms.append(float(norm))
    model.eval()
    both = [p for p in signal["base"] if p in signal["suffix"]]  # prompts where both groups carry signal
    g_base = float(np.mean([np.mean(signal["base"][p]) for p in both])) if both else float("nan")
    g_suffix = float(np.mean([np.mean(signal["suffix"][p]) for p in both])) if both else float("nan")
    return {"train/loss": float(np.mean(losses)), "train/grad_norm": float(np.mean(norms)),
            "signal/g_base": g_base, "signal/g_suffix": g_suffix,
            "signal/ratio": g_suffix / g_base if both else float("nan"), "signal/prompts": len(both)}


def buffer_metrics(groups):
    """Rewards and all-same-outcome rates of the buffer's groups, per kind."""
    out = {"reward/groups": [[g.kind, g.prompt, float(np.mean([r.reward for r in g.rollouts]))] for g in groups]}
    for kind in ("base", "suffix"):
        gs = [g for g in groups if g.kind == kind]
        rewards = [r.reward for g in gs for r in g.rollouts]
        out[f"reward/{kind}"] = float(np.mean(rewards)) if rewards else float("nan")
        out[f"groups/{kind}_all_equal"] = float(np.mean([bool((g.advantages == 0).all()) for g in gs])) if gs else float("nan")
        out[f"groups/{kind}"] = len(gs)
    return out


# -----------------------------------------------------------------------------
# Policy, data, checkpoints


def make_policy(model, cfg):
    """Base model + LoRA adapter on all linear layers (App. C), or every weight trainable."""
    if cfg.full_finetune:
        model.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, target_modules="all-linear",
                      lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def load_training_problems(cfg):
    """The training set: a JSONL file, the bundled problems, or a benchmark of
    evaluate.py (the paper's: the 400 NuminaMath-Olympiads training problems)."""
    if cfg.data.endswith(".jsonl"):
        problems = tm.load_problems(cfg.data)
    else:
        import evaluate
        problems = evaluate.load_benchmark(cfg.data, n=cfg.train_problems, seed=cfg.seed,
                                           train_problems=cfg.train_problems)
    if len(problems) > cfg.train_problems:
        problems = random.Random(cfg.seed).sample(problems, cfg.train_problems)
    return problems


def step_problems(problems, cfg, step):
    """The prompts of a step: epoch e visits a seeded permutation of the problems."""
    per_epoch = math.ceil(len(problems) / cfg.prompts_per_step)
    epoch, k = divmod(step, per_epoch)
    order = np.random.default_rng(cfg.seed + 7777 * epoch).permutation(len(problems))
    return [problems[i] for i in order[k * cfg.prompts_per_step:(k + 1) * cfg.prompts_per_step]]


def save_checkpoint(model, optimizer, cfg, step):
    """Adapter (PEFT format, loadable by PeftModel.from_pretrained and vLLM), trainable
    weights, optimizer and RNG states, and the next step (the data position)."""
    final = os.path.join(cfg.out, "checkpoint")
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    if hasattr(model, "peft_config"):
        model.save_pretrained(os.path.join(tmp, "adapter"), save_embedding_layers=False)
    trainable = {k: v for k, v in model.state_dict().items()
                 if k in {n for n, p in model.named_parameters() if p.requires_grad}}
    torch.save(trainable, os.path.join(tmp, "trainable.pt"))
    torch.save(optimizer.state_dict(), os.path.join(tmp, "optimizer.pt"))
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
               os.path.join(tmp, "rng.pt"))
    with open(os.path.join(tmp, "state.json"), "w") as fh:
        json.dump({"next_step": step, "config": dataclasses.asdict(cfg)}, fh, indent=2)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def load_checkpoint(model, optimizer, run_dir):
    ckpt = os.path.join(run_dir, "checkpoint")
    model.load_state_dict(torch.load(os.path.join(ckpt, "trainable.pt")), strict=False)
    optimizer.load_state_dict(torch.load(os.path.join(ckpt, "optimizer.pt")))
    rng = torch.load(os.path.join(ckpt, "rng.pt"), weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    with open(os.path.join(ckpt, "state.json")) as fh:
        return json.load(fh)["next_step"]


def log_line(m):
    return (f"step {m['step']:>4} | reward base {m['reward/base']:.3f} suffix {m['reward/suffix']:.3f} | "
            f"loss {m['train/loss']:+.4f} gnorm {m['train/grad_norm']:.3f} | "
            f"tok base {m['tokens/base']} suffix {m['tokens/suffix']} loc {m['tokens/localize']} | "
            f"gen {m['time/gen_s']:.1f}s loc {m['time/localize_s']:.1f}s train {m['time/train_s']:.1f}s "
            f"step {m['time/step_s']:.1f}s")


# -----------------------------------------------------------------------------
# The training loop


def main(argv=None, method="grpo", buffer_fn=build_buffer):
    """Train with `buffer_fn(engine, problems, cfg, step) -> (groups, stats)`:
    GRPO's base groups here; rrpo.py and srpo.py pass their reset buffers."""
    from tqdm import tqdm

    cfg = parse_config(argv, method)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.set_num_threads(os.cpu_count() or 1)
    if not cfg.resume:
        if os.path.exists(os.path.join(cfg.out, "checkpoint")) and not cfg.demo:
            sys.exit(f"{cfg.out} already holds a run: pass --resume {cfg.out} or choose another --out")
        shutil.rmtree(cfg.out, ignore_errors=True)
        os.makedirs(cfg.out)
        with open(os.path.join(cfg.out, "config.json"), "w") as fh:
            json.dump(dataclasses.asdict(cfg), fh, indent=2)
    print("config:", json.dumps(dataclasses.asdict(cfg)))

    engine_kind, why = gpus.choose_engine(cfg.engine)
    print(why)
    if engine_kind == "vllm" and cfg.full_finetune:
        sys.exit("--engine vllm trains a LoRA adapter; --full-finetune runs with --engine hf")
    multi_gpu = engine_kind == "vllm" and torch.cuda.device_count() > 1
    model, tokenizer = tm.load_model(cfg.model, device_map="auto" if multi_gpu else None)  # layers over the GPUs
    if engine_kind == "vllm":  # the paper's scale: recompute activations instead of storing them
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    policy = make_policy(model, cfg)
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    if engine_kind == "vllm":  # rollouts on vLLM from the base weights + this step's adapter
        engine = gpus.VLLMEngine(cfg.model, tokenizer, tp=cfg.tp, lora_rank=cfg.lora_rank, seed=cfg.seed,
                                 sleep=cfg.vllm_sleep, gpu_memory_utilization=cfg.vllm_memory,
                                 max_model_len=cfg.max_prompt_tokens + cfg.max_response_tokens + 64)
    else:
        engine = tm.HFEngine(policy, tokenizer, cfg.gen_batch_size)  # rollouts from the current policy
    served = [None]

    def serve(step):  # vLLM must serve the policy as it is now: wake it, load this step's adapter
        if engine_kind == "vllm" and served[0] != step:
            engine.wake()
            engine.load_adapter(gpus.save_step_adapter(policy, cfg.out, step), step)
            served[0] = step
    problems = load_training_problems(cfg)
    validation = []
    if cfg.eval_every:  # held-out problems for the validation curve (Fig. 3)
        import evaluate
        pool = tm.load_problems(cfg.eval_data) if cfg.eval_data.endswith(".jsonl") else \
            evaluate.load_benchmark(cfg.eval_data, n=max(cfg.eval_n, 500), seed=cfg.seed)
        train_ids = {p["id"] for p in problems}
        pool = [p for p in pool if p["id"] not in train_ids] or pool
        validation = random.Random(cfg.seed + 1).sample(pool, min(cfg.eval_n, len(pool)))
    total = cfg.epochs * math.ceil(len(problems) / cfg.prompts_per_step)
    total = min(total, cfg.max_steps) if cfg.max_steps else total
    start = 0
    metrics_path = os.path.join(cfg.out, "metrics.jsonl")
    if cfg.resume:
        start = load_checkpoint(policy, optimizer, cfg.resume)
        # drop what the interrupted run logged past its checkpoint; eval lines carry the step count after the step
        for path, last in ((metrics_path, start - 1), (os.path.join(cfg.out, "eval.jsonl"), start)):
            kept = [line for line in open(path) if json.loads(line)["step"] <= last] if os.path.exists(path) else []
            with open(path, "w") as fh:
                fh.writelines(kept)
        print(f"resumed {cfg.out} at step {start}")
    print(f"{cfg.method}: {len(problems)} problems, {total} steps of {cfg.prompts_per_step} prompts x {cfg.group_size} rollouts")

    def validate(after_step):  # the evaluation hook: greedy pass rate into eval.jsonl (Fig. 3)
        import evaluate
        serve(after_step)
        rate = evaluate.validate(engine, validation, cfg.out, after_step, cfg)
        tqdm.write(f"step {after_step:>4} | validation pass rate {rate:.3f} on {len(validation)} problems")

    if cfg.eval_every and start == 0:
        validate(0)  # where the policy starts
    history = []
    bar = tqdm(range(start, total), desc=cfg.method, initial=start, total=total)
    for step in bar:
        t_step = time.perf_counter()
        batch = step_problems(problems, cfg, step)
        serve(step)
        groups, stats = buffer_fn(engine, batch, cfg, step)  # Alg. 2, lines 1-10
        if engine_kind == "vllm":
            engine.sleep()  # with --vllm-sleep, the trainer gets vLLM's GPU memory
        t_train = time.perf_counter()
        train = train_on_buffer(policy, optimizer, groups, cfg, engine.pad_id)  # Alg. 2, line 11
        m = {"step": step, **buffer_metrics(groups), **stats, **train,
             "time/train_s": time.perf_counter() - t_train, "time/step_s": time.perf_counter() - t_step}
        m["tokens/per_prompt"] = (m["tokens/base"] + m["tokens/suffix"] + m["tokens/localize"]) / len(batch)
        history.append(m)
        with open(metrics_path, "a") as fh:
            fh.write(json.dumps(m) + "\n")
        tqdm.write(log_line(m))
        if cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or step + 1 == total):
            validate(step + 1)
        if (step + 1) % cfg.save_every == 0 or step + 1 == total:
            save_checkpoint(policy, optimizer, cfg, step + 1)
    summary = summarize(history)
    where = "checkpoint/trainable.pt" if cfg.full_finetune else "checkpoint/adapter, PEFT format"
    with open(os.path.join(cfg.out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    print(f"\n{cfg.method} done: {json.dumps(summary)}\nrun folder: {cfg.out}  (weights in {where})")
    evals = [json.loads(line) for line in open(os.path.join(cfg.out, "eval.jsonl"))] if cfg.eval_every else []
    if len(evals) > 1:
        print(f"{cfg.method}: validation pass rate {evals[0]['pass_rate']:.3f} at step {evals[0]['step']} -> "
              f"{evals[-1]['pass_rate']:.3f} at step {evals[-1]['step']} ({len(validation)} held-out problems, greedy)")
    return history


def summarize(history):
    """Closing summary: means over the steps of this run."""
    if not history:
        return {}
    keys = ["reward/base", "reward/suffix", "tokens/per_prompt", "time/step_s", "time/gen_s", "time/localize_s",
            "time/train_s", "groups/base_all_equal", "groups/suffix_all_equal", "signal/ratio"]
    out = {"steps": len(history)}
    for k in keys:
        vals = [m[k] for m in history if k in m and m[k] == m[k]]  # skip NaN
        out[k] = float(np.mean(vals)) if vals else None
    return out


if __name__ == "__main__":
    main()
