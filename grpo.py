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
  App. C, Table 5               the settings: config.py (the CLI defaults)
  App. G                        per-token gradient signal g_it = |A_i| / T_i (1 - pi)  gradient_signal()
  App. H                        tokens and times per step                           the metrics of main()
  Sec. 5, Fig. 3                greedy validation pass rate every `--eval-every`
                                steps, into eval.jsonl                              validate()

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
  * `--loss-normaliser constant` (a control, not the paper's loss) divides every
    rollout's token sum by the response cap instead of its own active tokens:
    a short suffix's tokens then weigh what a full rollout's do, so a reset
    method's gain that survives it is not a step-size effect of short suffixes.
  * `--no-prefix-mask` (an ablation, the authors' release's no-mask variant)
    makes every response token of a shared-prefix rollout active, the reset
    prefix's included; the paper's loss masks the prefix.
  * Training problems (`--data`): by default the 400 NuminaMath-Olympiads
    training problems (benchmarks.py, needs the Hub), drawn with --data-key,
    the same for every run key; an epoch is its whole steps (the last partial
    batch dropped, as in the authors' release: 12 steps of 32). The demo uses
    the classroom world's training chains; any JSONL file of problems works.
  * A reset method's step also writes one line per seed to resets.jsonl: the
    reset record (rrpo.reset_records), kept out of metrics.jsonl for its size.
  * One process. On GPUs (`--engine vllm`, gpus.py) vLLM generates from the base
    weights plus this step's adapter (`engine.sync` saves and hot-loads it), and
    the trainer's layers are spread over the GPUs by accelerate's device map;
    `build_buffer` only needs an engine with the interface of engines.py.
  * The run's settings are one config.Config (`cfg`); the Thought MDP's caps
    and sampling settings are its ThoughtConfig (`cfg.thought`), the same object
    the rollouts, the validation and the loss's temperature read.

Run it
  python grpo.py --demo                          # CPU: the classroom world (tiny_world.py), a few minutes
  python grpo.py --demo smollm2-135m             # CPU: bundled SmolLM2 on the bundled problems (smoke run)
  python grpo.py --model allenai/OLMo-3-7B-Instruct   # paper settings (GPU, Hub access)
  python grpo.py --resume runs/grpo-demo         # continue a run from its last checkpoint (runs.py)
  python grpo.py --help                          # every flag, with its meaning and default
"""

import dataclasses
import json
import os
import random
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

import benchmarks
import config
import cpu_share
import engines
import gpus
import pipeline
import runs
import sandbox
import thought_mdp as tm

# -----------------------------------------------------------------------------
# Sec. 4.3: advantages and the loss


def group_advantages(rewards):
    """Alg. 2, line 9: (r - mean) / std within one group; zeros when all rewards are equal."""
    r = torch.as_tensor(rewards, dtype=torch.float32)  # (G,)
    std = r.std(unbiased=False) if len(r) > 1 else torch.tensor(0.0)
    if std < 1e-8:  # no outcome difference, no signal (never NaN)
        return torch.zeros_like(r)
    return (r - r.mean()) / std  # (G,)


def pg_loss(logp, adv, mask, logp_old=None, clip_eps=0.0, constant=None):
    """Sec. 4.3: -(1/N) sum_i (1/T_i) sum_t mask_it A_i log pi(y_it), for logp (N, T),
    adv (N,), mask (N, T). With clip_eps > 0 and logp_old (N, T), the per-token term
    is PPO's clipped surrogate min(rho A, clip(rho, 1 -+ eps) A) instead (App. C, Table 4).
    `constant` (--loss-normaliser constant, a control): T_i = that number for every
    rollout, so every token weighs the same whatever its rollout's length."""
    assert logp.shape == mask.shape and adv.shape == logp.shape[:1], "logp, mask (N, T); adv (N,)"
    T_i = mask.sum(1).clamp(min=1) if constant is None else torch.full_like(adv, float(constant))  # (N,)
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
    advantages: torch.Tensor = None  # (len(rollouts),), set by the training loop (Alg. 2, lines 8-10)


# The kinds of random key a step draws: (run key, step, kind, prompt, ...) never repeats
KEY_BASE, KEY_RANDOM_RESET, KEY_LOCALIZE, KEY_REFERENCE_LOCALIZE, KEY_SEARCH, KEY_SUFFIX, KEY_VALIDATION = (
    range(7)
)


def step_key(cfg, step, kind, *more):
    """The random key of one sampled call of a step, derived from (run key, step, kind,
    prompt, ...), never added up, so runs repeat on the CPU and no two calls share a key."""
    return engines.derive_key(cfg.run_key, step, kind, *more)


def build_buffer(engine, problems, cfg, step):
    """GRPO: one base group of G iid rollouts from each prompt x_0, on cfg.schedule
    (the same rollouts on every schedule: row k of prompt b draws from its own key)."""
    start = time.perf_counter()
    states = [tm.initial_state(engine.tokenizer, p, cfg.thought) for p in problems]
    keys = [step_key(cfg, step, KEY_BASE, b) for b in range(len(problems))]
    if cfg.schedule == "sequential":  # one prompt after another
        samples = [
            tm.sample_rollouts(engine, [x0], cfg.group_size, cfg.thought, k) for x0, k in zip(states, keys)
        ]
        fill = {}
    else:  # every prompt's rows in one running batch
        samples, fill = pipeline.sample_all(engine, states, cfg.group_size, cfg.thought, keys, cfg.schedule)
    groups = [Group(b, "base", rollouts) for b, rollouts in enumerate(samples)]
    rollouts = [r for g in groups for r in g.rollouts]
    return groups, {
        "tokens/base": sum(len(r.response_ids) for r in rollouts),
        "tokens/suffix": 0,
        "tokens/localize": 0,
        "time/gen_s": time.perf_counter() - start,
        "time/localize_s": 0.0,
        "rollouts/generated": len(rollouts),
        **fill,
    }


# -----------------------------------------------------------------------------
# The update


def token_logprobs(model, rollouts, pad_id, temperature, prefix_mask=True):
    """log pi(y_t | prefix) of every response token, and the active-token mask.
    Rows are left-padded so that the response positions are the last K columns.
    Returns logp (n, K) and mask (n, K) with K the longest response."""
    K = max(len(r.response_ids) for r in rollouts)
    # (n, L) left-padded
    ids, attention = engines.pad_batch([r.prompt_ids + r.response_ids for r in rollouts], pad_id)
    width = ids.shape[1]
    mask = torch.zeros((len(rollouts), K))  # (n, K)
    for i, r in enumerate(rollouts):
        # prefix of x* masked (--no-prefix-mask: every response token counts)
        own = r.own_mask if prefix_mask else [1] * len(r.response_ids)
        mask[i, K - len(r.response_ids) :] = torch.tensor(own, dtype=torch.float)
    device = next(model.parameters()).device
    ids, attention, mask = ids.to(device), attention.to(device), mask.to(device)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    logits = model(
        input_ids=ids, attention_mask=attention, position_ids=positions, logits_to_keep=K + 1
    ).logits[:, :-1]  # (n, K, V): position t predicts token t+1
    targets = ids[:, width - K :]  # (n, K) the response tokens (and pads to the left, masked)
    # float32 log-softmax in chunks of positions, recomputed in the backward pass: a float32
    # (n, K, V) tensor would take 15 GB for 4 rollouts x 6k tokens x Qwen's 152k vocabulary
    from torch.utils.checkpoint import checkpoint

    chunks = [
        checkpoint(
            chosen_logprobs,
            logits[:, k : k + LOGP_CHUNK],
            targets[:, k : k + LOGP_CHUNK],
            temperature,
            use_reentrant=False,
        )
        for k in range(0, K, LOGP_CHUNK)
    ]
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
                        old[id(r)] = token_logprobs(model, [r], pad_id, cfg.thought.temperature)[0][0]
    model.train()
    # rollouts per pass; 0 = not chosen yet (main chooses on GPUs)
    size = cfg.train_microbatch or gpus.CPU_MICROBATCH
    for start in range(0, len(prompts), cfg.minibatch_prompts):
        chosen = set(prompts[start : start + cfg.minibatch_prompts])
        items = [
            (g, r, g.advantages[i]) for g in groups if g.prompt in chosen for i, r in enumerate(g.rollouts)
        ]
        N = len(items)
        active = [(g, r, a) for g, r, a in items if a != 0]  # A_i = 0 adds nothing to the gradient
        optimizer.zero_grad(set_to_none=True)
        loss_total = 0.0
        for m in range(0, len(active), size):
            micro = active[m : m + size]
            # (n, K)
            logp, mask = token_logprobs(
                model, [r for _, r, _ in micro], pad_id, cfg.thought.temperature, not cfg.no_prefix_mask
            )
            adv = torch.stack([a for _, _, a in micro]).to(logp.device)  # (n,)
            logp_old = None
            if cfg.clip_eps > 0:
                logp_old = torch.zeros_like(logp)
                for i, (_, r, _) in enumerate(micro):
                    logp_old[i, logp.shape[1] - len(old[id(r)]) :] = old[id(r)]
            constant = cfg.thought.max_response_tokens if cfg.loss_normaliser == "constant" else None
            loss = (
                pg_loss(logp, adv, mask, logp_old, cfg.clip_eps, constant) * len(micro) / N
            )  # share of the 1/N
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
    return {
        "train/loss": float(np.mean(losses)),
        "train/grad_norm": float(np.mean(norms)),
        "signal/g_base": g_base,
        "signal/g_suffix": g_suffix,
        "signal/ratio": g_suffix / g_base if both else float("nan"),
        "signal/prompts": len(both),
    }


def buffer_metrics(groups):
    """Rewards and all-same-outcome rates of the buffer's groups, per kind."""
    out = {
        "reward/groups": [[g.kind, g.prompt, float(np.mean([r.reward for r in g.rollouts]))] for g in groups]
    }
    for kind in ("base", "suffix"):
        gs = [g for g in groups if g.kind == kind]
        rewards = [r.reward for g in gs for r in g.rollouts]
        out[f"reward/{kind}"] = float(np.mean(rewards)) if rewards else float("nan")
        out[f"groups/{kind}_all_equal"] = (
            float(np.mean([bool((g.advantages == 0).all()) for g in gs])) if gs else float("nan")
        )
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

    lora = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        target_modules="all-linear",
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def load_policy(cfg, engine_kind):
    """The trainable policy and its tokenizer. On the vLLM path on GPUs (the paper's scale)
    the trainer's layers are spread over the GPUs and recompute their activations."""
    if engine_kind == "vllm" and cfg.full_finetune:
        sys.exit("--engine vllm trains a LoRA adapter; --full-finetune runs with --engine hf")
    # vLLM's CPU build trains as the HF path does
    at_scale = engine_kind == "vllm" and torch.cuda.is_available()
    spread = at_scale and torch.cuda.device_count() > 1
    model, tokenizer = benchmarks.load_model(cfg.model, device_map="auto" if spread else None)
    if at_scale:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    return make_policy(model, cfg), tokenizer


def training_problems(cfg):
    """The run's training problems: `train_problems` of `data`, drawn with the data key
    (--data-key), not the run key: every run key trains on the same problems."""
    return benchmarks.load_benchmark(
        cfg.data, cfg.train_problems, config.data_key(cfg), train_problems=cfg.train_problems
    )


def validation_problems(cfg, train):
    """Held-out problems for the validation curve (Fig. 3): `eval_n` drawn with the
    data key from `eval_data`, leaving out the training problems: the same for every run key."""
    if not cfg.eval_every:
        return []
    key = config.data_key(cfg)
    pool = benchmarks.load_benchmark(cfg.eval_data, n=max(cfg.eval_n, 500), key=key)
    train_ids = {p["id"] for p in train}
    pool = [p for p in pool if p["id"] not in train_ids] or pool
    return random.Random(engines.derive_key(key, KEY_VALIDATION)).sample(pool, min(cfg.eval_n, len(pool)))


def validate(engine, problems, tcfg, run_dir, step, samples=0):
    """The evaluation hook (Fig. 3): greedy pass rate on `problems` under the run's
    caps `tcfg`, appended to RUN_DIR/eval.jsonl; with `samples`, also the pass rate
    of that many rollouts per problem at the training temperature (pass_rate_sampled),
    drawn from keys of the step alone, so that two runs at the same step share them."""
    greedy = dataclasses.replace(tcfg, temperature=0.0, top_p=1.0)
    states = [tm.initial_state(engine.tokenizer, p, greedy) for p in problems]
    rate = float(np.mean([r.reward for r in tm.sample_rollouts(engine, states, 1, greedy, key=0)]))
    record = {"step": step, "pass_rate": rate, "n": len(problems)}
    if samples:
        key = engines.derive_key(KEY_VALIDATION, step)
        sampled = tm.sample_rollouts(engine, states, samples, tcfg, key=key)
        record["pass_rate_sampled"] = float(np.mean([r.reward for r in sampled]))
    runs.append_jsonl(os.path.join(run_dir, "eval.jsonl"), record)
    return record


def sandbox_problem(problems, cfg):
    """Code problems are graded by running the policy's programs (rewards.py, sandbox.py).
    Where the sandbox has no namespaces a program can outlive its grade and write where
    user nobody may, so training on code there is refused unless --allow-weak-sandbox."""
    if not any(p.get("kind") == "code" for p in problems):
        return None
    mode = sandbox.mode()
    print(f"code problems: graded in the sandbox, isolation {mode}")
    if mode == "namespaces" or cfg.allow_weak_sandbox:
        return None
    return (
        f"{cfg.method}.py: training on code needs the sandbox's namespace isolation, and this machine gives "
        f"{mode!r} (a program can outlive its grade there); --allow-weak-sandbox accepts the risk"
    )


def steps_per_epoch(n_problems, cfg):
    """Whole steps in a pass over n problems: the last partial batch is dropped, as in the
    authors' release (400 problems / 32 = 12 steps, 24 in two epochs); fewer problems than
    one step's make one smaller step."""
    return max(1, n_problems // cfg.prompts_per_step)


def step_problems(problems, cfg, step):
    """The prompts of a step: epoch e visits a permutation, drawn with the run key, of the
    problems, in whole steps (the problems past the last whole step sit that epoch out)."""
    per_epoch = steps_per_epoch(len(problems), cfg)
    epoch, k = divmod(step, per_epoch)
    order = np.random.default_rng([cfg.run_key, epoch]).permutation(len(problems))
    return [problems[i] for i in order[k * cfg.prompts_per_step : (k + 1) * cfg.prompts_per_step]]


# -----------------------------------------------------------------------------
# The training loop


def main(argv=None, method="grpo", buffer_fn=build_buffer, check=None):
    """Train with `buffer_fn(engine, problems, cfg, step) -> (groups, stats)`:
    GRPO's base groups here; rrpo.py and srpo.py pass their reset buffers (and
    `check`, their test of the split against G)."""

    cfg = config.parse_config(argv, method, check)
    with cpu_share.claim() as share:  # torch's threads: this run's share of the cores
        return train(cfg, buffer_fn, share)


def train(cfg, buffer_fn, share):
    """grpo.main's run, once the config is parsed and the run has its share of the CPU."""
    from tqdm import tqdm

    torch.manual_seed(cfg.run_key)
    random.seed(cfg.run_key)
    np.random.seed(cfg.run_key)
    print(share.refresh())
    if not cfg.resume:
        runs.prepare(cfg.out, dataclasses.asdict(cfg), overwrite=bool(cfg.demo))
    print("config:", json.dumps(dataclasses.asdict(cfg)))
    engine_kind, why = gpus.choose_engine(cfg.engine)
    print(why)
    problem = gpus.unsupported(
        engine_kind, cfg.tp, cfg.vllm_sleep, benchmarks.own_model(cfg.model) and cfg.model
    )
    if problem:
        sys.exit(problem)
    problems = training_problems(cfg)
    if problem := sandbox_problem(problems, cfg):
        sys.exit(problem)
    code = any(p.get("kind") == "code" for p in problems)
    if code and not cfg.resume:  # the isolation the code is graded under, in the run's config
        cfg = dataclasses.replace(cfg, sandbox_mode=sandbox.mode())
        runs.prepare(cfg.out, dataclasses.asdict(cfg), overwrite=True)
    policy, tokenizer = load_policy(cfg, engine_kind)
    tp, microbatch, chose = gpus.hardware_defaults(
        engine_kind, cfg.tp, cfg.train_microbatch, policy, cfg.thought, cfg.vllm_memory, cfg.vllm_sleep
    )
    print(chose)
    # config.json keeps 0 = "chosen at start"
    cfg = dataclasses.replace(cfg, tp=tp, train_microbatch=microbatch)
    optimizer = torch.optim.AdamW(
        [p for p in policy.parameters() if p.requires_grad],
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        weight_decay=cfg.weight_decay,
    )
    engine = gpus.make_engine(cfg, engine_kind, policy, tokenizer)
    validation = validation_problems(cfg, problems)
    total = cfg.epochs * steps_per_epoch(len(problems), cfg)
    total = min(total, cfg.max_steps) if cfg.max_steps else total
    start = runs.resume(policy, optimizer, cfg.out) if cfg.resume else 0
    print(
        f"{cfg.method}: {len(problems)} problems, {total} steps of "
        f"{cfg.prompts_per_step} prompts x {cfg.group_size} rollouts"
    )

    def validate_after(steps_done):  # Fig. 3: the policy as it is after `steps_done` updates
        engine.sync(policy, steps_done)
        record = validate(engine, validation, cfg.thought, cfg.out, steps_done, cfg.eval_samples)
        sampled = (
            f", sampled {record['pass_rate_sampled']:.3f} (x{cfg.eval_samples})" if cfg.eval_samples else ""
        )
        tqdm.write(
            f"step {steps_done:>4} | validation pass rate {record['pass_rate']:.3f}{sampled} "
            f"on {len(validation)} problems"
        )

    if validation and start == 0:
        validate_after(0)  # where the policy starts
    history = []
    for step in tqdm(range(start, total), desc=cfg.method, initial=start, total=total):
        if changed := share.refresh():  # another run started or ended beside this one
            tqdm.write(changed)
        t_step = time.perf_counter()
        batch = step_problems(problems, cfg, step)
        engine.sync(policy, step)  # rollouts from the current policy (vLLM: this step's adapter)
        groups, stats = buffer_fn(engine, batch, cfg, step)  # Alg. 2, lines 1-7
        if code:  # what the sandbox could not do this step: counted, never hidden in a 0 reward
            stats["sandbox/mode"] = sandbox.mode()
            stats.update({f"sandbox/failures/{k}": n for k, n in sandbox.take_failures().items()})
        for record in stats.pop("reset/trees", []):  # a reset method's records, one line per seed
            runs.append_jsonl(os.path.join(cfg.out, "resets.jsonl"), {"step": step, **record})
        for g in groups:  # Alg. 2, lines 8-10: advantages normalised within each group
            g.advantages = group_advantages([r.reward for r in g.rollouts])
        engine.sleep()  # vLLM with --vllm-sleep: the trainer gets its GPU memory
        t_train = time.perf_counter()
        train = train_on_buffer(policy, optimizer, groups, cfg, engine.pad_id)  # Alg. 2, line 11
        m = {
            "step": step,
            **buffer_metrics(groups),
            **stats,
            **train,
            "time/train_s": time.perf_counter() - t_train,
            "time/step_s": time.perf_counter() - t_step,
        }
        m["tokens/per_prompt"] = (m["tokens/base"] + m["tokens/suffix"] + m["tokens/localize"]) / len(batch)
        history.append(m)
        runs.append_jsonl(os.path.join(cfg.out, "metrics.jsonl"), m)
        tqdm.write(runs.log_line(m))
        if validation and ((step + 1) % cfg.eval_every == 0 or step + 1 == total):
            validate_after(step + 1)
        if (step + 1) % cfg.save_every == 0 or step + 1 == total:
            runs.save_checkpoint(policy, optimizer, cfg.out, step + 1, dataclasses.asdict(cfg))
    runs.finish(cfg.out, cfg.method, history, n_validation=len(validation))
    return history


if __name__ == "__main__":
    main()
