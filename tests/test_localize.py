"""Tests for localize.py: parse_step on messy outputs, the prompt, fallbacks,
and localization calls through a real (tiny) model and a scripted engine."""

import pytest
from conftest import ANSWERED, ScriptedEngine

import config
import engines
import localize
import thought_mdp as tm


@pytest.mark.parametrize(
    "text,n_steps,expected",
    [  # the authors' release's order: the last box, else the last "Step N" phrase, else the fallback
        ("\\boxed{3}", 5, (3, "boxed")),
        ("The first error is in step 2.\n\\boxed{2}", 5, (2, "boxed")),
        ("\\boxed{ 4 }", 5, (4, "boxed")),
        ("**\\boxed{1}**", 5, (1, "boxed")),
        ("\\boxed{2} no wait \\boxed{4}", 5, (4, "boxed")),
        ("\\boxed{0}", 5, (1, "boxed_zero")),  # "no wrong step": clamped to step 1
        ("\\boxed{6}", 5, (None, "fallback")),  # out of range, and no phrase
        ("Step 4 looks off. \\boxed{9}", 5, (4, "phrase")),  # an out-of-range box: the phrase
        ("\\boxed{4} and then \\boxed{9}", 5, (None, "fallback")),  # only the last box counts
        ("\\boxed{Step 3}", 5, (3, "phrase")),
        ("The error is in step 3.", 5, (3, "phrase")),
        ("Step 2 is fine, but step 3 is wrong", 5, (3, "phrase")),  # the last phrase
        ("step 7 is wrong", 5, (None, "fallback")),
        ("\\boxed{3.}", 5, (None, "fallback")),
        ("\\boxed{\\text{2}}", 5, (None, "fallback")),
        ("\\boxed{x = 12}", 20, (None, "fallback")),  # an answer to the problem, not a step
        ("\\boxed{2.5}", 5, (None, "fallback")),
        ("Step 2: \\boxed{3", 5, (2, "phrase")),  # a box cut off: its braces never balance
        ("I cannot tell which one.", 5, (None, "fallback")),
        ("", 5, (None, "fallback")),
        (None, 5, (None, "fallback")),
    ],
)
def test_read_step(text, n_steps, expected):
    assert localize.read_step(text, n_steps) == expected
    assert localize.parse_step(text, n_steps) == expected[0]


def failed_rollout(texts):
    return tm.Rollout(
        problem=ANSWERED,
        prompt_ids=[1],
        thought_ids=[[7]] * len(texts),
        thought_texts=texts,
        finish_reason="answer",
        reward=0.0,
        answer="6",
    )


def test_chain_is_rendered_as_numbered_steps_without_markers(tiny_tokenizer):
    chain = localize.render_chain(["Add 2 and 3.</thought>\n", " 2 + 3 = 6.</thought>"])
    assert chain == "Step 1: Add 2 and 3.\nStep 2: 2 + 3 = 6."
    ids = localize.localization_prompt(tiny_tokenizer, failed_rollout(["a</thought>", "b</thought>"]))
    text = tiny_tokenizer.decode(ids)
    assert "What is 2 + 3?" in text and "Step 2: b" in text and "</thought>" not in text
    assert "from 1 to 2" in text and text.endswith("<|im_start|>assistant\n")


def test_localize_reads_its_answers_and_falls_back_to_step_one(tiny_tokenizer):
    rollouts = [failed_rollout(["s1", "s2", "s3"]) for _ in range(4)]
    engine = ScriptedEngine(
        tiny_tokenizer, localizations=["\\boxed{2}", "I cannot tell.", "\\boxed{Step 3}", "\\boxed{0}"]
    )
    found = localize.localize(engine, rollouts, key=0)
    assert [(r.index, r.parsed, r.path) for r in found] == [
        (2, True, "boxed"),
        (1, False, "fallback"),  # the release's fallback: step 1, an empty prefix
        (3, True, "phrase"),
        (1, True, "boxed_zero"),
    ]
    assert found[1].n_tokens == len(tiny_tokenizer("I cannot tell.", add_special_tokens=False)["input_ids"])
    # the release's settings: temperature 0.3, up to 4,096 tokens, one answer each
    assert all((p.temperature, p.max_tokens, p.n) == (0.3, 4096, 1) for p in engine.calls)


def test_uniform_fallback_draws_every_step(tiny_tokenizer):
    rollouts = [failed_rollout(["s1", "s2", "s3"])]
    cfg = localize.LocalizeConfig(**localize.BEFORE_RELEASE)
    draws = []
    for key in range(200):
        engine = ScriptedEngine(tiny_tokenizer, localizations=["no idea"])
        [found] = localize.localize(engine, rollouts, cfg, key=key)
        assert not found.parsed and found.path == "fallback"
        draws.append(found.index)
    assert set(draws) == {1, 2, 3} and all(draws.count(h) > 40 for h in (1, 2, 3))
    assert all(p.temperature == 0.0 and p.max_tokens == 64 for p in engine.calls)


def test_localize_runs_a_real_model(tiny_model, tiny_tokenizer):
    engine = engines.HFEngine(tiny_model, tiny_tokenizer)
    cfg = localize.LocalizeConfig(max_tokens=8)
    found = localize.localize(engine, [failed_rollout(["a</thought>", "b</thought>"])], cfg)
    assert 1 <= found[0].index <= 2 and 1 <= found[0].n_tokens <= 8
    assert found[0].parsed == (localize.parse_step(found[0].text, 2) is not None)
    assert found[0].path in localize.PATHS


def test_localize_script_runs_on_the_bundled_model(capsys):
    loc = localize.main(["--tries", "2"])
    out = capsys.readouterr().out
    assert "h* =" in out and loc is not None and loc.index >= 1


@pytest.mark.parametrize(
    "text,verdict",
    [
        ("\\boxed{yes}", True),
        ("Checked. \\boxed{No}", False),
        ("\\boxed{\\text{yes}}.", True),
        ("\\boxed{incorrect}", False),
        ("\\boxed{no} wait \\boxed{yes}", True),
        ("\\boxed{3}", None),
        ("yes", None),
        ("\\boxed{yes} then \\boxed{7}", True),
        ("", None),
        (None, None),
    ],
)
def test_parse_verdict(text, verdict):
    assert localize.parse_verdict(text) is verdict


def test_verification_prompt_shows_the_chain_as_numbered_steps(tiny_tokenizer):
    text = tiny_tokenizer.decode(
        localize.verification_prompt(tiny_tokenizer, failed_rollout(["a</thought>", "b</thought>"]))
    )
    assert "What is 2 + 3?" in text and "Step 1: a\nStep 2: b" in text and "\\boxed{yes}" in text
    assert text.endswith("<|im_start|>assistant\n")


def long_rollout(tokenizer, n_steps, question):
    problem = {"id": "long", "kind": "math", "question": question, "answer": "5"}
    texts = [
        f"Step body number {h} with several words of reasoning in it.</thought>" for h in range(1, n_steps)
    ]
    texts.append("So the answer is \\boxed{6}.</thought>")
    prompt = tm.encode_prompt(tokenizer, problem, tm.ThoughtConfig())
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    return tm.Rollout(problem, prompt, ids, texts, "answer", 0.0)


def test_an_over_long_localization_request_keeps_header_problem_and_first_steps(tiny_tokenizer):
    """The request is cut in the chain's middle, never at its start: the chat header,
    the instructions, the problem, the first steps and the answer step stay."""
    tok = tiny_tokenizer
    question = "What is 2 + 3? " + "Read every word of this statement. " * 40
    rollout = long_rollout(tok, 60, question)
    full = localize.localization_prompt(tok, rollout, localize.LocalizeConfig(max_prompt_tokens=100_000))
    cap = len(full) // 2
    ids = localize.localization_prompt(tok, rollout, localize.LocalizeConfig(max_prompt_tokens=cap))
    text = tok.decode(ids)
    assert len(full) > cap >= len(ids) > cap - 40  # fitted, and not cut far below the cap
    assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_start|>assistant\n")
    assert "Your task is to find the first step" in text and question.strip() in " ".join(text.split())
    assert "Step 1: Step body number 1 " in text and "Step 60: So the answer is" in text
    assert "are left out here for length.]" in text and "Step 59:" not in text
    assert "Choose exactly ONE step number, from 1 to 60" in text  # the instructions after the chain stay too
    with pytest.raises(ValueError, match="does not fit"):
        localize.localization_prompt(tok, rollout, localize.LocalizeConfig(max_prompt_tokens=50))


def test_srpo_localization_requests_fit_a_cap_derived_from_the_rollout_caps(tiny_tokenizer):
    """SRPO's localizer gets requests no longer than one rollout may be (prompt cap +
    response cap): the engine's window, whatever the chain's length."""
    import dataclasses

    from conftest import ScriptedEngine

    import srpo

    tok = tiny_tokenizer
    thought = tm.ThoughtConfig(max_prompt_tokens=700, max_response_tokens=420)
    cfg = dataclasses.replace(config.Config(model="tiny", method="srpo"), thought=thought)
    assert localize.LocalizeConfig.for_caps(thought).max_prompt_tokens == 1120
    question = "What is 2 + 3? " + "Read every word of this statement. " * 5
    seed = long_rollout(tok, 12, question)  # a rollout within the caps: 375 prompt ids, 406 response ids
    assert len(seed.prompt_ids) <= 700 and len(seed.response_ids) <= 420
    engine = ScriptedEngine(tok, localizations=["\\boxed{3}"])
    asked = srpo.localization_requests(engine, seed, cfg, 0, (0, 0))
    answers = [judge.generate([prompt], settings)[0][0] for judge, prompt, settings in asked]
    chosen = srpo.self_localized_index(seed, answers, cfg, 0, (0, 0))
    [[request]] = engine.prompts
    assert chosen.h == 3 and chosen.parsed
    assert (
        len(request) <= 1120
        and question.strip() in tok.decode(request)
        and "Step 12: So the answer" in tok.decode(request)
    )
