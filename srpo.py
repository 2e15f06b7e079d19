"""srpo.py: Self-Reset Policy Optimization (Sec. 4.2, Algorithm 2 with a self-localized h*).

What SRPO adds to rrpo.py is only how the reset index is chosen: the policy
itself is shown its failed seed as numbered steps and names the first wrong
one (localize.py); x* is the prefix before it. This realises CPI-CARO at the
thought level, with self-localization standing in for the credit-assignment
oracle (the rejection-sampling draw from G_{h,tau} of Algorithm 3).

Paper map (Algorithm 2)
  line 5    h* <- self-localized index of the seed's first erroneous thought
                                     localization_requests(), self_localized_index()
  App. H    localization output tokens are counted (`tokens/localize`), which the
            paper's token totals left out
  (release) `--localize-offset K` resets K thoughts before the located step, h* - K
            (at least 1): the authors' release's offset ablation
  Sec. 5.3  `--localizer MODEL` localizes with another model instead of the policy;
            `--reference-localizer MODEL` also asks another model, for comparison only
            (the records behind Fig. 4b-d; the paper used Claude Opus 4.5). Both are
            fields of config.Config: saved in config.json, restored on --resume
  the rest  rrpo.py (seed search, splits, suffix group) and grpo.py (loss, loop)

Symbols
  h*        -> rrpo.ResetIndex.h, from localize.Localization.index (1-based)
  judge     -> the engine that localizes: the policy's own, or --localizer's
  h_ref     -> --reference-localizer's step for the same seed (None when it did not parse)

Choices, and why
  * The policy localizes with the engine it samples with, one request per
    seed, made the moment the seed is known, with the authors' release's
    settings: temperature 0.3, up to 4,096 tokens, the answer read as a boxed
    step, else a "Step N" phrase, else step 1 (localize.py; the flags
    --localize-temperature, --localize-max-tokens, --localize-fallback). The
    rule is a ResetRule of rrpo.py: `localization_requests` asks, and
    `self_localized_index` reads the answer, so every schedule runs it.
  * A second model (--localizer, --reference-localizer) runs on the HF engine
    and is loaded once per run.

Metrics added: `localize/path/boxed`, `localize/path/boxed_zero`,
`localize/path/phrase`, `localize/path/fallback` (how each seed's h* was read),
`localize/parse_failures` (the fallbacks), `localize/fallback_rate` (their share;
those seeds reset to step 1, or with --localize-fallback uniform to RRPO's random
step), `tokens/localize`, `time/localize_s`.

Run it
  python srpo.py --demo                                # CPU: the classroom world (tiny_world.py), minutes
  python srpo.py --demo smollm2-135m                   # CPU: bundled SmolLM2 (smoke run)
  python srpo.py --demo --schedule sequential          # Algorithm 2 one prompt after another: same buffers
  python srpo.py --model allenai/OLMo-3-7B-Instruct    # the paper's setting (GPU)
  python srpo.py --demo --localizer PATH_OR_HUB_ID     # a second model localizes
"""

import functools

import benchmarks
import engines
import grpo
import localize
import rrpo


@functools.cache
def other_engine(name):
    """A second model's engine (--localizer, --reference-localizer), loaded once per run."""
    return engines.HFEngine(*benchmarks.load_model(name))


def localize_config(cfg):
    """The localizer's settings of run config `cfg` (--localize-temperature, ...)."""
    return localize.LocalizeConfig.for_caps(
        cfg.thought,
        temperature=cfg.localize_temperature,
        max_tokens=cfg.localize_max_tokens,
        fallback=cfg.localize_fallback,
    )


def localization_requests(engine, seed, cfg, step, key):
    """Alg. 2, line 5, the question (key = prompt, seed number): the seed as numbered
    steps, to the policy's own engine (or --localizer's); and the same to
    --reference-localizer, for comparison only (Fig. 4b-d)."""
    caps = localize_config(cfg)
    judges = [(other_engine(cfg.localizer) if cfg.localizer else engine, grpo.KEY_LOCALIZE)]
    if cfg.reference_localizer:
        judges.append((other_engine(cfg.reference_localizer), grpo.KEY_REFERENCE_LOCALIZE))
    return [
        (
            judge,
            localize.localization_prompt(judge.tokenizer, seed, caps),
            localize.settings(caps, grpo.step_key(cfg, step, kind, *key)),
        )
        for judge, kind in judges
    ]


def self_localized_index(seed, answers, cfg, step, key):
    """Alg. 2, line 5, the answer: h* is the step the localizer names; when no step
    can be read, step 1 or a uniform draw from the answer's own key (--localize-fallback,
    localize.read)."""
    own_key = grpo.step_key(cfg, step, grpo.KEY_LOCALIZE, *key)
    found = localize.read(answers[0], seed, engines.derive_key(own_key, 0), cfg.localize_fallback)
    h_ref = None
    if cfg.reference_localizer:
        ref_key = grpo.step_key(cfg, step, grpo.KEY_REFERENCE_LOCALIZE, *key)
        ref = localize.read(answers[1], seed, engines.derive_key(ref_key, 0), cfg.localize_fallback)
        h_ref = ref.index if ref.parsed else None
    h = max(1, found.index - cfg.localize_offset)  # --localize-offset k: h* - k (0: the located step)
    return rrpo.ResetIndex(h, found.parsed, found.n_tokens, h_ref, found.path, found.text)


SELF_LOCALIZED = rrpo.ResetRule(choose=self_localized_index, ask=localization_requests)


def build_buffer(engine, problems, cfg, step):
    return rrpo.reset_buffer(engine, problems, cfg, step, SELF_LOCALIZED)


def main(argv=None):
    return grpo.main(argv, method="srpo", buffer_fn=build_buffer, check=rrpo.check_split)


if __name__ == "__main__":
    main()
