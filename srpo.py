"""srpo.py: Self-Reset Policy Optimization (Sec. 4.2, Algorithm 2 with a self-localized h*).

What SRPO adds to rrpo.py is only how the reset index is chosen: the policy
itself is shown its failed seed as numbered steps and names the first wrong
one (localize.py); x* is the prefix before it. This realises CPI-CARO at the
thought level, with self-localization standing in for the credit-assignment
oracle (the rejection-sampling draw from G_{h,tau} of Algorithm 3).

Paper map (Algorithm 2)
  line 5    h* <- self-localized index of the seed's first erroneous thought   self_localized_indices()
  App. H    localization output tokens are counted (`tokens/localize`), which the
            paper's token totals left out
  Sec. 5.3  `--localizer MODEL` localizes with another model instead of the policy;
            `--reference-localizer MODEL` also asks another model, for comparison only
            (the records behind Fig. 4b-d; the paper used Claude Opus 4.5)
  the rest  rrpo.py (seed search, splits, suffix group) and grpo.py (loss, loop)

Metrics added: `localize/parse_failures` (answers with no valid step number),
`localize/fallback_rate` (their share; those seeds get a uniform h*, i.e. RRPO's
reset), `tokens/localize`, `time/localize_s`.

Run it
  python srpo.py --demo                                  # CPU: the classroom world (tiny_world.py), a few minutes
  python srpo.py --demo smollm2-135m                     # CPU: bundled SmolLM2 (smoke run)
  python srpo.py --model allenai/OLMo-3-7B-Instruct   # the paper's setting (GPU)
  python srpo.py --demo --localizer PATH_OR_HUB_ID       # a second model localizes
"""

import argparse

import grpo
import localize
import rrpo
import thought_mdp as tm

_localizer = {}  # the engine that localizes, when it is not the policy's


def self_localized_indices(engine, seeds, cfg, step):
    """Alg. 2, line 5: one batched localization call over every seed of the step."""
    judge = _localizer.get("engine", engine)  # default: the policy localizes its own seeds
    found = localize.localize(judge, seeds, localize.LocalizeConfig(), grpo.step_seed(cfg, step, 5))
    failures = sum(not f.parsed for f in found)
    stats = {"tokens/localize": sum(f.n_tokens for f in found), "localize/parse_failures": failures,
             "localize/fallback_rate": failures / len(found)}
    if "reference" in _localizer:  # audit only: a second model's step for the same seeds (Fig. 4b-d)
        ref = localize.localize(_localizer["reference"], seeds, localize.LocalizeConfig(), grpo.step_seed(cfg, step, 6))
        stats["reference_indices"] = [f.index if f.parsed else None for f in ref]
    return [f.index for f in found], stats


def build_buffer(engine, problems, cfg, step):
    return rrpo.reset_buffer(engine, problems, cfg, step, self_localized_indices)


def main(argv=None):
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--localizer", default=None, help="localize with this model instead of the policy")
    parser.add_argument("--reference-localizer", default=None,
                        help="also localize every seed with this model, for comparison only (resets stay self-localized)")
    args, rest = parser.parse_known_args(argv)
    if args.localizer:
        _localizer["engine"] = tm.HFEngine(*tm.load_model(args.localizer))
    if args.reference_localizer:
        _localizer["reference"] = tm.HFEngine(*tm.load_model(args.reference_localizer))
    return grpo.main(rest, method="srpo", buffer_fn=build_buffer)


if __name__ == "__main__":
    main()
