"""srpo.py: Self-Reset Policy Optimization (Sec. 4.2, Algorithm 2 with a self-localized h*).

What SRPO adds to rrpo.py is only how the reset index is chosen: the policy
itself is shown its failed seed as numbered steps and names the first wrong
one (localize.py); x* is the prefix before it. This realises CPI-CARO at the
thought level, with self-localization standing in for the credit-assignment
oracle (the rejection-sampling draw from G_{h,tau} of Algorithm 3).

Paper map (Algorithm 2)
  line 5    h* <- self-localized index of the seed's first erroneous thought   self_localized_index()
  App. H    localization output tokens are counted (`tokens/localize`), which the
            paper's token totals left out
  Sec. 5.3  `--localizer MODEL` localizes with another model instead of the policy;
            `--reference-localizer MODEL` also asks another model, for comparison only
            (the records behind Fig. 4b-d; the paper used Claude Opus 4.5). Both are
            fields of grpo.Config: saved in config.json, restored on --resume
  the rest  rrpo.py (seed search, splits, suffix group) and grpo.py (loss, loop)

Symbols
  h*        -> rrpo.ResetIndex.h, from localize.Localization.index (1-based)
  judge     -> the engine that localizes: the policy's own, or --localizer's
  h_ref     -> --reference-localizer's step for the same seed (None when it did not parse)

Choices, and why
  * The policy localizes with the engine it samples with, greedily, one
    request per seed made the moment the seed is known: on the pipelined
    schedule it joins the batch beside other prompts' rollouts (pipeline.py;
    localize.py: prompt, parsing, and the uniform fallback when no step number
    can be read).
  * A second model (--localizer, --reference-localizer) runs on the HF engine
    and is loaded once per run.

Metrics added: `localize/parse_failures` (answers with no valid step number),
`localize/fallback_rate` (their share; those seeds get a uniform h*, i.e. RRPO's
reset), `tokens/localize`, `time/localize_s`.

Run it
  python srpo.py --demo                                  # CPU: the classroom world (tiny_world.py), a few minutes
  python srpo.py --demo smollm2-135m                     # CPU: bundled SmolLM2 (smoke run)
  python srpo.py --model allenai/OLMo-3-7B-Instruct   # the paper's setting (GPU)
  python srpo.py --demo --localizer PATH_OR_HUB_ID       # a second model localizes
"""

import functools

import benchmarks
import engines
import grpo
import localize
import pipeline
import rrpo


@functools.cache
def other_engine(name):
    """A second model's engine (--localizer, --reference-localizer), loaded once per run."""
    return engines.HFEngine(*benchmarks.load_model(name))


def localized(sched, judge, seed, cfg, key):
    """One localization request for `seed` on `judge`, waited for; its Localization."""
    caps = localize.LocalizeConfig.for_caps(cfg.thought)
    request = sched.generate(
        judge,
        [localize.localization_prompt(judge.tokenizer, seed, caps)],
        localize.settings(caps, key),
        "localize",
    )
    yield from pipeline.wait(request)
    return localize.read(request.results[0], seed, engines.derive_seed(key, 0))


def self_localized_index(sched, seed, cfg, step, key):
    """Alg. 2, line 5 for one seed (key = prompt, seed), a machine: the policy's own
    engine (or --localizer's) names the first wrong step; --reference-localizer's step
    is recorded beside it for comparison only (Fig. 4b-d)."""
    judge = other_engine(cfg.localizer) if cfg.localizer else sched.engine
    found = yield from localized(sched, judge, seed, cfg, grpo.step_seed(cfg, step, grpo.LOCALIZE, *key))
    h_ref = None
    if cfg.reference_localizer:
        ref = yield from localized(
            sched,
            other_engine(cfg.reference_localizer),
            seed,
            cfg,
            grpo.step_seed(cfg, step, grpo.REFERENCE_LOCALIZE, *key),
        )
        h_ref = ref.index if ref.parsed else None
    return rrpo.ResetIndex(found.index, found.parsed, found.n_tokens, h_ref)


def build_buffer(engine, problems, cfg, step):
    return rrpo.reset_buffer(engine, problems, cfg, step, self_localized_index)


def main(argv=None):
    return grpo.main(argv, method="srpo", buffer_fn=build_buffer, check=rrpo.check_split)


if __name__ == "__main__":
    main()
