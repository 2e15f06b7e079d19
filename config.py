"""config.py: the settings of a training run: the paper's Table 5 as the CLI defaults, the CPU demos.

One dataclass, Config, holds every setting of grpo.py, rrpo.py and srpo.py,
grouped under comment headers; each field's comment is its --help text. The
command line is parsed here (paper defaults, then a --demo preset, then the
flags given), the resolved config is printed and saved with every run
(config.json), and a resumed run reads it back.

Paper map
  App. C, Table 5   LoRA r = alpha = 64 on all linear layers; AdamW 5e-5,
                    (0.9, 0.999), wd 0.01; clip 1.0; 32 prompts a step,
                    mini-batches of 8, one epoch; G = 8; T = 0.7, top-p 0.95;
                    2 epochs over 400 problems                            Config
  Sec. 5.1          the budget splits 1x4, 2x4, 1x8                       SPLITS
  App. C, Table 4   the PPO-style clip, off by default                    Config.clip_eps

Symbols
  cfg          -> Config; cfg.thought the Thought MDP's caps and sampling (thought_mdp.ThoughtConfig)
  B, G         -> cfg.prompts_per_step, cfg.group_size
  run key      -> cfg.run_key, the random key every draw of a run derives from (the paper's
                  "seeds" 0, 42, 420; a seed, in the paper and here, is a failed rollout)

Choices
  * The CPU demos (DEMOS) are named presets, never the defaults: `--demo` is
    the classroom world (tiny_world.py), `--demo smollm2-135m` the bundled model.
  * A bad value is refused up front with one line naming the flag.
  * Renamed flags keep their old names as deprecated aliases (--seed for
    --run-key, --vllm-seeded for --vllm-keyed), and config.json files written
    under the old names still load.

Run it
  python grpo.py --help                   # every flag, with its meaning and default
  python srpo.py --demo                   # the classroom preset
  python srpo.py --resume runs/srpo-demo  # a run's saved config, continued
"""

import argparse
import dataclasses
import os
from dataclasses import dataclass

import benchmarks
import gpus
import localize
import runs
import thought_mdp as tm


@dataclass
class Config:
    # model and policy
    # tiny-world, smollm2-135m (bundled), a Hub id or a local folder
    model: str = "allenai/OLMo-3-7B-Instruct"
    lora_rank: int = 64  # LoRA r (App. C)
    lora_alpha: int = 64  # LoRA alpha
    full_finetune: bool = False  # train every weight instead of a LoRA adapter (tiny models)
    # optimisation (App. C, Table 5)
    lr: float = 5e-5  # AdamW learning rate, constant, no warm-up
    beta1: float = 0.9  # AdamW beta1
    beta2: float = 0.999  # AdamW beta2
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    grad_clip: float = 1.0  # l2 gradient clipping
    clip_eps: float = 0.0  # PPO-style ratio clip; 0 = off (App. C, Table 4)
    # rollout: each rollout's token sum over its own active tokens (Sec. 4.3); constant: over the
    # response cap for every rollout (a control: the same weight for every token)
    loss_normaliser: str = "rollout"
    # schedule
    # training problems: a name of benchmarks.py, "bundled", or a JSONL file
    data: str = "numina-olympiads-train"
    train_problems: int = 400  # problems drawn (with --data-key) from the data
    # the key of the training and validation problems' draw, the same for every run key
    # (the authors' release draws them once, with 42; the run key varies the training only)
    data_key: int = 42
    epochs: int = 2  # passes over the training problems
    prompts_per_step: int = 32  # B, prompts per training step
    minibatch_prompts: int = 8  # prompts per optimizer step (one epoch over the step's buffer)
    max_steps: int = 0  # stop after this many steps (0 = all epochs)
    # rollouts (Sec. 4.1-4.2, App. C); the Thought MDP's caps and sampling are
    # thought_mdp.ThoughtConfig's flags
    group_size: int = 8  # G, rollouts per prompt in total
    # caps, temperature, top-p
    thought: tm.ThoughtConfig = dataclasses.field(
        default_factory=lambda: tm.ThoughtConfig(prompt_format="raw")
    )
    gen_batch_size: int = 32  # rows decoded at once by the HF engine
    # pipelined: each prompt's next request joins the running batch (pipeline.py); phases;
    # sequential: Algorithm 2 one prompt after another (rrpo.reset_prompt); all give the same buffer
    schedule: str = "pipelined"
    # resets (rrpo.py, srpo.py; GRPO ignores them)
    # SxK: S seeds with K suffixes each, the other G - S*K rollouts the base group (Sec. 5.1)
    split: str = "1x4"
    # excluded: the seeds are left out of the base group (Alg. 2); iid: see rrpo.py
    base_group: str = "excluded"
    # rollouts per prompt the seed search may sample before falling back to GRPO (the release's 12)
    seed_budget: int = 12
    # stream rows drawn ahead with the seed search's first round, dropped when unneeded (rrpo.py)
    search_ahead: int = 0
    localizer: str = ""  # SRPO: localize with this model instead of the policy ("" = self-localization)
    # SRPO: the localizer's sampling temperature (the authors' release: 0.3; 0 = greedy)
    localize_temperature: float = 0.3
    localize_max_tokens: int = 4096  # SRPO: tokens of the localizer's answer (the authors' release)
    # SRPO: h* when no step can be read from the answer: first (step 1, the release's) or uniform
    localize_fallback: str = "first"
    # SRPO: reset this many thoughts before the located step, h* - k, at least 1 (an ablation of the release)
    localize_offset: int = 0
    # train a shared-prefix rollout on its prefix tokens too (an ablation; the paper masks them, Sec. 4.3)
    no_prefix_mask: bool = False
    # SRPO: also localize every seed with this model, for comparison only (Fig. 4b-d)
    reference_localizer: str = ""
    # GPUs (gpus.py)
    engine: str = "auto"  # hf | vllm | auto (vllm when it imports and a GPU is present)
    # vLLM tensor parallel size = GPUs used (the trainer is spread over them); 0 = every visible GPU
    tp: int = 0
    vllm_memory: float = 0.45  # fraction of each GPU's memory vLLM may take (weights + KV cache)
    vllm_sleep: bool = False  # vLLM sleep mode level 1 while the trainer runs
    # a derived random key per vLLM request (repeatable, but vLLM's slower sampler on GPUs)
    vllm_keyed: bool = False
    # rollouts per forward/backward pass; 0 = what fits the GPU's memory (4 on the CPU)
    train_microbatch: int = 0
    # rewards (rewards.py, sandbox.py)
    # train on code problems where the sandbox has no namespaces (a program can then outlive its grade)
    allow_weak_sandbox: bool = False
    # the code sandbox's isolation, recorded at start when the data holds code (sandbox.mode())
    sandbox_mode: str = ""
    # run
    # the run's random key (the paper's "seeds" 0, 42, 420): data order, every row sampled,
    # the initialisation; --seed is its old name (deprecated: a seed is a failed rollout)
    run_key: int = 0
    out: str = ""  # run folder (default runs/<method>, runs/<method>-demo[-<preset>])
    save_every: int = 10  # checkpoint every N steps (and at the end)
    eval_every: int = 0  # validation pass rate every N steps into eval.jsonl (0 = off)
    eval_data: str = "bundled"  # validation problems: a name of benchmarks.py or a JSONL file
    eval_n: int = 32  # validation problems used (drawn with the run key)
    # also a sampled pass rate: this many rollouts per validation problem at the training
    # temperature and top-p, from keys that do not depend on the run key (0: greedy only)
    eval_samples: int = 0
    resume: str = ""  # run folder to continue from its checkpoint, with its saved config
    demo: str = ""  # a small CPU preset (DEMOS): tiny-world (the default of a bare --demo) or smollm2-135m
    method: str = "grpo"  # set by the script: grpo, rrpo or srpo


LOSS_NORMALISERS = ("rollout", "constant")  # what divides a rollout's token sum in the loss (grpo.pg_loss)
SPLITS = ("1x4", "2x4", "1x8")  # the budget splits of Sec. 5.1 (what each means: rrpo.split_sizes)
BASE_GROUPS = ("excluded", "iid")  # how the base group relates to the seeds (rrpo.split_stream)
SCHEDULES = ("pipelined", "phases", "sequential")  # how the prompts' requests share the engine

# Fields added since config.json files were first written, with the value a run saved
# before them ran with (a resumed old run keeps its behaviour).
BEFORE = dict(
    data_key=None,  # None: the run key drew the data
    seed_budget=16,
    localize_temperature=0.0,
    localize_max_tokens=64,
    localize_fallback="uniform",
)

# The CPU demos. `--demo` (the README's first command) trains the classroom world's 1M-parameter
# model (tiny_world.py) in full, 8 prompts a step, the caps of its H-step chains, greedy pass rate on
# 128 held-out chains: it learns in a few minutes. `--demo smollm2-135m`: the bundled SmolLM2 on the
# bundled problems, a smoke run of the real-model path (machinery, not learning). The rest as above.
DEMOS = {
    "tiny-world": dict(
        model="tiny-world",
        data="tiny-world-train",
        train_problems=4000,
        eval_data="tiny-world",
        eval_n=128,
        eval_every=10,
        max_steps=100,
        full_finetune=True,
        lr=1e-4,
        prompts_per_step=8,
        minibatch_prompts=4,
        gen_batch_size=64,
        train_microbatch=16,
        save_every=50,
        data_key=0,  # the draw of the runs measured in docs/classroom.md (a fixed key, as the paper's)
        localize_max_tokens=64,  # its localizer answers \\boxed{k} in a few tokens; 64 stops a runaway
    ),
    "smollm2-135m": dict(
        model="smollm2-135m",
        data="bundled",
        prompts_per_step=2,
        minibatch_prompts=1,
        max_steps=4,
        thought=tm.ThoughtConfig(max_thoughts=3, max_thought_tokens=40, max_response_tokens=120),
        gen_batch_size=16,
        lr=1e-4,
        save_every=2,
        eval_every=2,
        eval_n=6,
        localize_max_tokens=120,  # as long as one of its rollouts (the paper's 4,096 takes minutes on a CPU)
    ),
}


def parse_config(argv=None, method="grpo", check=None):
    """The run's Config from the command line: paper defaults, then a --demo preset,
    then the flags given. `check(cfg)` (rrpo.py's split check) returns an error or None.
    A bad value is refused with one line naming the flag."""
    parser = argparse.ArgumentParser(description=f"{method.upper()} training in the Thought MDP")
    tm.add_flags(
        parser,
        Config,
        skip=("method", "demo"),
        choices={
            "engine": gpus.ENGINES,
            "split": SPLITS,
            "base_group": BASE_GROUPS,
            "schedule": SCHEDULES,
            "localize_fallback": localize.FALLBACKS,
            "loss_normaliser": LOSS_NORMALISERS,
        },
    )
    parser.add_argument(
        "--demo",
        nargs="?",
        const="tiny-world",
        default=None,
        choices=sorted(DEMOS),
        help=tm.field_help(Config)["demo"],
    )
    # --max-thoughts, ..., --temperature, --top-p, --prompt-format
    tm.add_flags(
        parser,
        tm.ThoughtConfig,
        Config().thought,
        choices={"prompt_format": tm.PROMPT_FORMATS, "grader": tuple(tm.GRADERS)},
    )
    for old, new in [("--seed", "run_key"), ("--vllm-seeded", "vllm_keyed")]:  # deprecated names
        kind = dict(action="store_true") if new == "vllm_keyed" else dict(type=int)
        parser.add_argument(
            old, dest=new, default=None, help=f"old name of --{new.replace('_', '-')}", **kind
        )
    args = parser.parse_args(argv)
    if args.resume:  # a resumed run keeps its own config; only its length may change
        others = [
            k
            for k, v in {**tm.given(args, Config), **tm.given(args, tm.ThoughtConfig)}.items()
            if k not in ("resume", "max_steps")
        ]
        if others:
            parser.error(
                f"--resume continues a run with its saved config; it takes only --max-steps, not {others}"
            )
        cfg = load_config(args.resume)
        return dataclasses.replace(cfg, resume=args.resume, max_steps=args.max_steps or cfg.max_steps)
    cfg = Config(method=method)
    if args.demo:
        cfg = dataclasses.replace(cfg, **DEMOS[args.demo])
    cfg = dataclasses.replace(cfg, **tm.given(args, Config))
    if cfg.eval_samples < 0:
        parser.error(
            f"--eval-samples takes 0 (greedy only) or more rollouts per problem, got {cfg.eval_samples}"
        )
    for flag, name in (("--data", cfg.data), ("--eval-data", cfg.eval_data)):
        if not benchmarks.known(name):
            parser.error(f"{flag}: unknown {name!r}; known: {benchmarks.known_names()}")
    if cfg.data == "livecodebench" or cfg.eval_data == "livecodebench-train":  # Sec. 5.3's split
        parser.error(
            "LiveCodeBench trains on its training verifier (--data livecodebench-train) and is "
            "validated and evaluated on its held-out tests (livecodebench)"
        )
    if problem := benchmarks.name_problem(cfg.model, cfg.data, cfg.eval_data):  # a world's bad knob
        parser.error(problem)
    world = benchmarks.own_model(cfg.model)  # a classroom world's caps follow its horizon
    if world:  # ... and it trains and validates on its own chains, unless --data / --eval-data say otherwise
        named = tm.given(args, Config)
        if "data" not in named and cfg.data.startswith("tiny-world"):
            cfg.data = world.name("tiny-world-train")
        if "eval_data" not in named and cfg.eval_data.startswith("tiny-world"):
            cfg.eval_data = world.name()
    cfg.thought = dataclasses.replace(
        world.caps() if world else cfg.thought, **tm.given(args, tm.ThoughtConfig)
    )
    suffix = {"": "", "tiny-world": "-demo"}.get(cfg.demo, "-demo-" + cfg.demo)
    cfg.out = cfg.out or os.path.join("runs", method + suffix)
    if cfg.prompts_per_step % cfg.minibatch_prompts:
        parser.error(
            f"--prompts-per-step {cfg.prompts_per_step} must be a multiple of --minibatch-prompts "
            f"{cfg.minibatch_prompts}: a step splits into whole mini-batches"
        )
    for name, least in [
        (n, 1) for n in ("group_size", "prompts_per_step", "minibatch_prompts", "gen_batch_size")
    ] + [
        ("train_microbatch", 0),
        ("tp", 0),
        ("search_ahead", 0),
        ("localize_offset", 0),
    ]:  # tp, microbatch 0: chosen at start
        if getattr(cfg, name) < least:
            parser.error(f"--{name.replace('_', '-')} must be at least {least}, got {getattr(cfg, name)}")
    if problem := check(cfg) if check else None:
        parser.error(problem)
    return cfg


def load_config(run_dir):
    """The Config a run folder was started with (config.json)."""
    saved = runs.read_config(run_dir)
    for old, new in [("seed", "run_key"), ("vllm_seeded", "vllm_keyed")]:  # names before the rename
        if old in saved:
            saved[new] = saved.pop(old)
    if "thought" not in saved:  # written before the caps became one ThoughtConfig: fields at the top
        saved["thought"] = {
            f.name: saved.pop(f.name) for f in dataclasses.fields(tm.ThoughtConfig) if f.name in saved
        }
    saved = {**BEFORE, **saved}  # a field it lacks ran as it did before the field existed
    saved["thought"] = {**tm.BEFORE, **saved["thought"]}
    return Config(**{**saved, "thought": tm.ThoughtConfig(**saved["thought"])})


def data_key(cfg):
    """The key of the run's problem draws: --data-key (None in a run saved before it: the run key)."""
    return cfg.run_key if cfg.data_key is None else cfg.data_key
