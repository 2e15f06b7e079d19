"""engines.py: the Thought MDP's engine interface and its HF transformers engine (App. C).

An engine turns token-id prompts into sampled token ids. Everything above this
file (rollouts, resets, localization, evaluation) talks to an engine through
one small interface, so the same code runs on the CPU with transformers (this
file) and on GPUs with vLLM (vllm_engine.py):

    engine.generate(prompts, SamplingSettings) -> [[Completion] * n per prompt]
    engine.tokenizer, engine.eos_ids, engine.pad_id
    engine.sync(policy, step)   serve the policy as it is after `step` updates
    engine.sleep(), engine.wake()   give the accelerator's memory to the trainer and back
    engine.decoder()                optional: a batch that takes rows while it runs (Decoder);
                                    any engine gets rounds of generate calls (CallDecoder)

A decoder runs rows: decoder.add(prompt ids, watcher, temperature, top_p, key,
tag), then decoder.step() until not decoder.busy; each step returns the rows
that finished. The watcher (StopWatcher here, thought_mdp.ThoughtTracker for
rollouts) takes the sampled ids and says when a row is done. Rows can be added
between steps, which is what lets pipeline.py keep the engine full.

Paper map
  App. C    sampling at temperature 0.7 with top-p 0.95 and no top-k; the stop
            string `</thought>` ends a thought                    SamplingSettings, sample_next(), StopWatcher
  App. C    the policy serves its own rollouts (on-policy)    HFEngine.sync() (the same object: nothing to do)
  (ours)    continuous batching with the KV cache on the CPU, rows
            joining while it runs, each distinct prompt prefilled once   Decoder
  (ours)    a KV cache with room to grow (no copy per token), rows that leave
            by swap-remove and join in place                          kv_cache.py
  (ours)    plain Llama models prefill and decode without
            transformers' per-call machinery                          llama_decode.py

Symbols (B rows in a batch, T tokens, V vocabulary)
  logits      -> (B, V) the next-token logits of every live row
  mask        -> (B, T) 1 on real tokens, 0 on left padding
  cache       -> transformers DynamicCache of kv_cache.SlackLayer: keys and values (B, heads, T, d) per layer,
                 in buffers with free columns for the next tokens

Stop rule (the contract every engine keeps): a sample stops at the token whose
decoding completes a stop string, and that token is kept whole (it may carry
characters past the stop string); at an end-of-sequence id, which is kept as
the last sampled token; or at max_tokens. Text is always decode(ids).

Deviations and choices
  * Every row draws from its own key (on the HF engine one random.Random per
    row, one uniform per token, inverted through the nucleus's CDF), so a row's
    sample does not depend on which rows share its batch or when it joined (up
    to float rounding, which could flip a near-tie): the pipelined and the
    phase-by-phase schedules of pipeline.py give the same rollouts. The vLLM
    engine keys per request only with --vllm-keyed (vllm_engine.py). Every random key
    is derived from a tuple (derive_key), never added up. (Random-number seeds
    are called keys throughout the project: in the paper, a seed is a failed
    rollout.)
  * Nucleus sampling sorts only the top 16 probabilities (else 512) when they
    already cover top-p, instead of the whole vocabulary, and not at all for a row
    whose top token alone holds more than top-p (most rows of a trained policy):
    the same draws, faster. A uniform that rounds to 1.0 in float32 is kept
    below it (it used to pick a token past the nucleus, about once in 3e7 draws).
  * A row that finishes leaves its cache slot to the batch's last row (swap-remove):
    one row's keys and values are copied instead of the whole cache. Rows that
    join take free slots in place (the cache keeps rows for a full batch) and are
    rebuilt into a new cache only when a prompt is longer than the cache's columns.
  * Loading a model by name is models.py's job; this file only samples.

Run it
  python engines.py                       # bundled SmolLM2-135M: two completions that stop at </thought>
  python engines.py --model PATH_OR_HUB_ID --prompt "Count to five."
"""

import argparse
import functools
import os
import random
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from transformers.cache_utils import DynamicCache

import cpu_share
import kv_cache
import llama_decode
import models

# -----------------------------------------------------------------------------
# The engine interface: token-id prompts in; sampled ids, text, finish reason out


@dataclass
class SamplingSettings:
    temperature: float = 0.7  # 0 = greedy
    top_p: float = 0.95
    max_tokens: int = 256  # new tokens per sample
    stop: tuple = ()  # stop strings; the completing token is kept (see the module docstring)
    n: int = 1  # samples per prompt
    key: int = 0  # row i of a call draws from derive_key(key, i) ...
    row_keys: tuple = None  # ... or from row_keys[i] when given (one per row, prompt-major)


def row_keys(settings, n_rows):
    """The key of every row of a call: its own, or derived from the call's key and the row."""
    if settings.row_keys is not None:
        assert len(settings.row_keys) == n_rows, f"{len(settings.row_keys)} row keys for {n_rows} rows"
        return list(settings.row_keys)
    return [derive_key(settings.key, i) for i in range(n_rows)]


@dataclass
class Completion:
    token_ids: list  # sampled ids, stop-completing token and EOS included
    text: str  # decode(token_ids), special tokens skipped
    finish_reason: str  # "stop" (stop string), "eos", "length"


def derive_key(*keys):
    """A random key derived from a tuple such as (run key, step, kind, round, row)
    by numpy's SeedSequence: distinct tuples practically never share a key, where
    sums of multiples (key + 97 * kind + row) collide. 62 bits,
    which torch generators, vLLM and `random` all accept. The tuple's length leads
    the entropy: SeedSequence alone maps (0, 1) and (0, 1, 0) to one state."""
    assert all(int(k) >= 0 for k in keys), f"key parts are non-negative integers, got {keys}"
    hi, lo = np.random.SeedSequence([len(keys), *(int(k) for k in keys)]).generate_state(2, np.uint32)
    return int(hi) << 30 | int(lo) >> 2


def eos_token_ids(model, tokenizer):
    """Every id that ends a sequence: the generation config's and the tokenizer's
    (vLLM stops on the same set: it adds the generation config's ids to each request's)."""
    return end_ids(model.generation_config, tokenizer)


def end_ids(generation_config, tokenizer):
    """The end-of-sequence ids of a GenerationConfig (one id, a list, or None) and the tokenizer's."""
    ids = generation_config.eos_token_id if generation_config is not None else None
    ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def stop_completed(tokenizer, ids, stop):
    """Does decode(ids) end a stop string at its last token? Only the tail is decoded,
    and only when the last token's own text holds the stop's last character: an ASCII
    character is one byte in every encoding a tokenizer decodes, so the token that
    completes the stop carries it (a row's tokens are checked one by one, each time)."""
    if stop[-1].isascii() and stop[-1] not in token_text(tokenizer, ids[-1]):
        return False
    tail = tokenizer.decode(ids[-(len(stop) + 2) :], skip_special_tokens=False)
    return stop in tail


@functools.lru_cache(maxsize=None)
def token_text(tokenizer, token_id):
    """One token's own text (kept: the decoder asks for every sampled token)."""
    return tokenizer.decode([token_id], skip_special_tokens=False)


class StopWatcher:
    """Per-sample stopping rule of Engine.generate: stop string, EOS or max_tokens."""

    def __init__(self, tokenizer, eos_ids, stop, max_tokens):
        self.tokenizer, self.eos_ids, self.stop, self.max_tokens = tokenizer, eos_ids, stop, max_tokens
        self.ids, self.done, self.finish_reason = [], False, "length"

    def call(self):
        """What one engine call for this sample stops at: (stop strings, token cap)."""
        return self.stop, self.max_tokens - len(self.ids)

    def feed(self, completion):
        """One engine call's Completion (CallDecoder): a single call makes the whole sample."""
        for token in completion.token_ids:
            if self.push(token):
                break
        if (
            not self.done
        ):  # the engine stopped by its own rule (vLLM's is the same; a scripted one may differ)
            self.done, self.finish_reason = True, completion.finish_reason

    def push(self, token_id):
        self.ids.append(token_id)
        if token_id in self.eos_ids:
            self.done, self.finish_reason = True, "eos"
        elif any(stop_completed(self.tokenizer, self.ids, s) for s in self.stop):
            self.done, self.finish_reason = True, "stop"
        elif len(self.ids) >= self.max_tokens:
            self.done = True
        return self.done


def pad_batch(seqs, pad_id, side="left"):
    """Token-id lists as one padded batch: ids (B, T) and mask (B, T), 1 on real tokens.
    Left padding keeps every row's last token in the last column (generation, the loss)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)  # (B, T)
    for i, s in enumerate(seqs):
        cols = slice(width - len(s), width) if side == "left" else slice(0, len(s))
        ids[i, cols] = torch.tensor(s, dtype=torch.long)
        mask[i, cols] = 1
    return ids, mask


def sample_next(logits, temperature, top_p, u):
    """One token per row from logits (B, V) and one uniform u (B,) in [0, 1) per row:
    greedy at temperature 0, else temperature then nucleus (top-p) sampling with
    top-k off (App. C), by inverting the nucleus's CDF at u. Each row's draw uses its
    own u only, so a row samples the same token whatever else is in the batch.
    temperature and top_p: floats, or (B,) per row (a list whose values are all
    equal counts as one float: the usual case, and the cheap one)."""
    B, device = logits.shape[0], logits.device
    temperature, top_p = one_value(temperature), one_value(top_p)
    if isinstance(temperature, float):  # every row alike: no per-row tensors, no argmax unless greedy
        if temperature <= 0:
            return logits.argmax(-1)
        temp = torch.full((B, 1), max(temperature, 1e-4), dtype=torch.float32, device=device)  # (B, 1)
        greedy = None
    else:
        temperature = torch.as_tensor(temperature, dtype=torch.float32, device=device).expand(B)  # (B,)
        greedy = logits.argmax(-1)  # (B,)
        if bool((temperature <= 0).all()):
            return greedy
        temp = temperature.clamp(min=1e-4)[:, None]  # (B, 1)
    top_p = torch.as_tensor(top_p, dtype=torch.float32, device=device)  # () or (B,)
    top_p = top_p if top_p.dim() == 0 else top_p.expand(B)
    # below 1 in float32 (a draw of 1.0 would pick past the nucleus)
    u = torch.as_tensor(u, dtype=torch.float32, device=device).clamp(max=1 - 2**-23)  # (B,)
    probs = torch.softmax(logits.float() / temp, -1)  # (B, V)
    # a row whose top token alone holds more than top_p (and more than half, so it is
    # the only top token) has a nucleus of that one token: its draw is the top token.
    # Most rows of a trained policy are such rows; only the others are sorted below
    top, drawn = probs.max(-1)  # (B,) each
    unsure = (top <= top_p.clamp(min=0.5)).nonzero()[:, 0]  # rows with more than one candidate
    if len(unsure):
        rows = slice(None) if len(unsure) == B else unsure
        tp = top_p if top_p.dim() == 0 else top_p[rows][:, None]  # () or (b, 1)
        drawn[rows] = nucleus_draw(probs[rows], tp, u[rows])
    return drawn if greedy is None else torch.where(temperature <= 0, greedy, drawn)


def nucleus_draw(probs, top_p, u):
    """The token at u of each row's nucleus: probs (b, V), top_p () or (b, 1), u (b,)."""
    # the nucleus usually lies in the top few tokens: sort only the top 16, else the top
    # 512, else the whole vocabulary. The token after the top k is outside every row's
    # nucleus once the top k's cumulative mass exceeds top_p, and then the draw below is
    # the one a full sort would give (the same cumulative sums of the same sorted values)
    for k in (16, 512, probs.shape[-1]):
        sorted_probs, order = probs.topk(min(k, probs.shape[-1]), -1)  # (b, k), descending
        total = sorted_probs.cumsum(-1)  # (b, k)
        if k >= probs.shape[-1] or bool((total[:, -1:] > top_p).all()):
            break
    # past the nucleus; the top one always stays
    outside = total - sorted_probs > top_p
    cdf = sorted_probs.masked_fill(outside, 0.0).cumsum(-1)  # (b, k), unnormalised
    target = u * cdf[:, -1]  # (b,)
    pick = torch.searchsorted(cdf, target[:, None], right=True).clamp(max=cdf.shape[-1] - 1)  # (b, 1)
    return order.gather(-1, pick).squeeze(-1)  # (b,)


def one_value(setting):
    """A per-row sampling setting as one float when every row has the same value."""
    if isinstance(setting, (int, float)):
        return float(setting)
    if isinstance(setting, (list, tuple)) and setting and all(s == setting[0] for s in setting):
        return float(setting[0])
    return setting


@dataclass
class Row:
    """One sample in a decoder: its prompt ids, the watcher that takes its tokens and
    says when it is done, its sampling settings and its own random stream."""

    prompt: list
    watcher: object  # StopWatcher, thought_mdp.ThoughtTracker: push(id) -> done; .ids
    temperature: float
    top_p: float
    key: int  # the row's own key: its draws never depend on the other rows
    tag: object = None  # the caller's label (the pipeline's phase), kept for the fill trace
    rng: random.Random = None
    calls: int = 0  # engine calls made so far (CallDecoder)
    cancelled: bool = False  # dropped before its end (pipeline.py's speculative search rows)


class CallDecoder:
    """Rows sampled in rounds of `engine.generate` calls, for any engine: each step
    is one call over every live row, for the row's next piece (a whole completion
    for a StopWatcher, one thought for a ThoughtTracker: `watcher.call()` says which
    stop strings and token cap). Rows added between steps join the next round.
    Call k of a row is keyed derive_key(row key, k)."""

    capacity = None  # no fixed batch: every live row is in every call

    def __init__(self, engine):
        self.engine, self.rows, self.trace = engine, [], []

    def add(self, prompt, watcher, temperature, top_p, key, tag=None):
        self.rows.append(Row(list(prompt), watcher, temperature, top_p, key, tag))

    @property
    def busy(self):
        return bool(self.rows)

    def cancel(self, watcher):
        self.rows = [r for r in self.rows if r.watcher is not watcher]

    def step(self):
        """One call per distinct (temperature, top-p, stop, cap) over the live rows;
        returns the rows that finished."""
        start, groups = time.perf_counter(), {}
        for row in self.rows:
            stop, max_tokens = row.watcher.call()
            groups.setdefault((row.temperature, row.top_p, tuple(stop), max_tokens), []).append(row)
        for (temperature, top_p, stop, max_tokens), rows in groups.items():
            settings = SamplingSettings(
                temperature, top_p, max_tokens, stop, 1, 0, tuple(derive_key(r.key, r.calls) for r in rows)
            )
            for row, [completion] in zip(
                rows, self.engine.generate([r.prompt + r.watcher.ids for r in rows], settings)
            ):
                row.watcher.feed(completion)
                row.calls += 1
        done = [r for r in self.rows if r.watcher.done]
        self.trace.append((time.perf_counter() - start, len(self.rows), [r.tag for r in self.rows]))
        self.rows = [r for r in self.rows if not r.watcher.done]
        return done


def run_to_end(decoder, prompts, watchers, temperature, top_p, keys):
    """Sample every row to its end on `decoder` (a one-off batch)."""
    for prompt, watcher, key in zip(prompts, watchers, keys):
        decoder.add(prompt, watcher, temperature, top_p, key)
    while decoder.busy:
        decoder.step()


class Decoder:
    """The HF engine's continuous batch: up to `capacity` rows decode together, a
    row that finishes leaves the batch (its KV-cache row is dropped) and a waiting
    row takes its slot (left-padded into the cache). Rows may be added while it
    runs: they wait for a free slot. One step() samples one token for every live
    row; `trace` keeps (seconds, live rows, their tags) per step.

    Each distinct prompt is prefilled once: its KV rows and last logits are kept
    by prompt ids (`prefixes`, the oldest dropped past `keep_tokens` tokens, by
    default a quarter of a full batch of 1024-token rows), so a group's G rows, a
    later search round from the same x_0 and a suffix group copy their prefix."""

    def __init__(self, engine, keep_tokens=None):
        self.engine, self.capacity = engine, engine.batch_size
        self.waiting, self.rows, self.state, self.trace = [], [], None, []
        # ids -> (kv, logits)
        self.prefixes, self.keep_tokens = (
            OrderedDict(),
            keep_tokens or 256 * engine.batch_size,
        )
        self.prefilled = 0  # prompt tokens run through the model (the rest were copied)

    def add(self, prompt, watcher, temperature, top_p, key, tag=None):
        self.waiting.append(Row(list(prompt), watcher, temperature, top_p, key, tag, random.Random(key)))

    @property
    def busy(self):
        return bool(self.waiting or self.rows)

    def cancel(self, watcher):
        """Drop a row: a waiting one at once, a live one at the next step (never returned as finished)."""
        self.waiting = [r for r in self.waiting if r.watcher is not watcher]
        for r in self.rows:
            r.cancelled = r.cancelled or r.watcher is watcher

    def _prefill(self, prompts):
        """[(kv per layer, each (1, heads, len, d), last logits (1, V))] per prompt:
        the ones not kept yet run through the model together, left-padded."""
        keys = [tuple(p) for p in prompts]
        missing = list(dict.fromkeys(k for k in keys if k not in self.prefixes))
        if missing:
            model = self.engine.model
            input_ids, mask = pad_batch(missing, self.engine.pad_id)  # (U, T) left-padded
            input_ids, mask = input_ids.to(model.device), mask.to(model.device)
            if self.engine.plain_llama:  # the same arithmetic without transformers' machinery
                kv, logits = llama_decode.prefill(model, input_ids, mask)  # [(keys, values)], (U, V)
            else:
                cache = DynamicCache()
                logits = model(
                    input_ids=input_ids,
                    attention_mask=mask,
                    position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                ).logits[:, -1]  # (U, V)
                kv = [(layer.keys, layer.values) for layer in cache.layers]
            for u, ids in enumerate(missing):  # row u without its padding
                self.prefixes[ids] = (
                    [
                        (k[u : u + 1, :, -len(ids) :].clone(), v[u : u + 1, :, -len(ids) :].clone())
                        for k, v in kv
                    ],
                    logits[u : u + 1],
                )
            self.prefilled += sum(map(len, missing))
        out = [self.prefixes[k] for k in keys]
        for k in keys:
            self.prefixes.move_to_end(k)
        while len(self.prefixes) > 1 and sum(map(len, self.prefixes)) > self.keep_tokens:
            self.prefixes.popitem(last=False)
        return out

    def _admit(self, prompts):
        """Join `prompts` to the running batch (or start one), every row left-padded to
        the longest. Rows join in place (kv_cache.SlackLayer.append_rows) when the cache has free
        rows and columns for them; otherwise the cache is rebuilt with room for a full batch."""
        groups = []  # [kv per layer, logits (1, V), length, rows]: runs of rows with the same prompt
        for p, (kv, lg) in zip(prompts, self._prefill(prompts)):
            if groups and groups[-1][0] is kv:
                groups[-1][3] += 1
            else:
                groups.append([kv, lg, len(p), 1])
        if self.state and self.state[0].layers[0].has_room(len(prompts), max(map(len, prompts))):
            cache = self.state[0]
            for i, layer in enumerate(cache.layers):
                layer.append_rows([(kv[i][0], kv[i][1], rows) for kv, _, _, rows in groups])
        else:
            layers = self.state[0].layers if self.state else []
            old = [[(layer.keys, layer.values)] for layer in layers] or [[] for _ in groups[0][0]]
            cache = DynamicCache()
            cache.layers = [  # (B, heads, width, d) each, room to grow, rows for a full batch
                kv_cache.SlackLayer.stacked(
                    old[i]
                    + [
                        (kv[i][0].expand(rows, -1, -1, -1), kv[i][1].expand(rows, -1, -1, -1))
                        for kv, _, _, rows in groups
                    ],
                    rows=self.capacity,
                )
                for i in range(len(groups[0][0]))
            ]
        blocks = [self.state[1:]] if self.state else []  # (mask, logits) of the rows already in
        device = groups[0][1].device
        blocks += [
            (torch.ones((rows, length), dtype=torch.long, device=device), lg.expand(rows, -1))
            for _, lg, length, rows in groups
        ]
        width = cache.layers[0].end - cache.layers[0].start
        return (
            cache,
            torch.cat([kv_cache.pad_left(mask, width - mask.shape[1]) for mask, _ in blocks]),
            torch.cat([logits for _, logits in blocks]),
        )

    @torch.no_grad()
    def step(self):
        """Admit waiting rows to free slots, sample one token per live row, drop the
        rows that finished, run the model on the rest. Returns the finished rows."""
        start, engine = time.perf_counter(), self.engine
        if self.waiting and len(self.rows) < self.capacity:  # fill the free slots, first come first served
            new, self.waiting = (
                self.waiting[: self.capacity - len(self.rows)],
                self.waiting[self.capacity - len(self.rows) :],
            )
            self.state = self._admit([r.prompt for r in new])
            self.rows += new
        live = len(self.rows)
        cache, mask, logits = self.state
        # (B,)
        tokens = sample_next(
            logits,
            [r.temperature for r in self.rows],
            [r.top_p for r in self.rows],
            [r.rng.random() for r in self.rows],
        )
        leaving = [
            j
            for j, token in enumerate(tokens.tolist())
            if self.rows[j].cancelled or self.rows[j].watcher.push(token)
        ]
        done = [r for r in self.rows if r.watcher.done]
        tags = [r.tag for r in self.rows]
        keep = kv_cache.swap_remove(live, leaving)
        self.rows = [self.rows[j] for j in keep]
        if not keep:
            self.state = None
        else:
            if leaving:  # finished rows leave the batch and the cache: the last rows take their slots
                index = torch.tensor(keep, device=mask.device)
                for layer in cache.layers:
                    layer.keep_rows(keep)
                tokens, mask = tokens[index], mask[index]
                lead = int((mask.cumsum(-1) == 0).sum(-1).min())  # columns that are padding in every row
                if lead:
                    mask = mask[:, lead:]
                    for layer in cache.layers:
                        layer.drop_front(lead)
            mask = torch.cat([mask, mask.new_ones((len(keep), 1))], -1)  # (B', T+1)
            if engine.plain_llama:  # the same arithmetic without transformers' per-call machinery
                logits = llama_decode.decode_step(engine.model, tokens, mask, cache)  # (B', V)
            else:
                logits = engine.model(
                    input_ids=tokens[:, None],
                    attention_mask=mask,
                    position_ids=mask.sum(-1, keepdim=True) - 1,
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                ).logits[:, -1]  # (B', V)
            self.state = (cache, mask, logits)
        self.trace.append((time.perf_counter() - start, live, tags))
        return done


class HFEngine:
    """Sampling with a transformers causal LM (CPU or GPU) and its KV cache, in our
    own continuous batch (Decoder) instead of `generate`: the batch stays full while
    samples stop at different lengths, where thought-level rollouts would lose half."""

    def __init__(self, model, tokenizer, batch_size=32):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        # decode a plain Llama on the CPU with llama_decode.py (it keeps a packed copy of the
        # weights); on a GPU, or with SRPO_HF_DECODE=1, transformers' forward
        self.plain_llama = (
            llama_decode.supports(model)
            and model.device.type == "cpu"
            and not os.environ.get("SRPO_HF_DECODE")
        )
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)

    def sync(self, policy, step):
        """Rollouts come from `self.model`, the very object the trainer updates: nothing to
        copy, only llama_decode's packed weights to rebuild at the next decode step."""
        assert policy is self.model, "the HF engine samples from the policy object itself"
        llama_decode.unpack(self.model)

    def sleep(self):
        """Nothing to free: the trainer and the sampler share the weights."""

    def wake(self):
        """Nothing to restore (see sleep)."""

    def decoder(self):
        """A continuous batch that takes rows while it runs (Decoder)."""
        return Decoder(self)

    def generate(self, prompts, params):
        """The engine interface: n completions for each token-id prompt; row i of the
        call (prompt-major) draws from its own key (row_keys, else derive_key(key, i))."""
        rows = [p for p in prompts for _ in range(params.n)]
        watchers = [StopWatcher(self.tokenizer, self.eos_ids, params.stop, params.max_tokens) for _ in rows]
        run_to_end(
            self.decoder(), rows, watchers, params.temperature, params.top_p, row_keys(params, len(rows))
        )
        out = [
            Completion(w.ids, self.tokenizer.decode(w.ids, skip_special_tokens=True), w.finish_reason)
            for w in watchers
        ]
        return [out[i * params.n : (i + 1) * params.n] for i in range(len(prompts))]


# -----------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description="Sample a few completions through the HF engine.")
    parser.add_argument("--model", default="smollm2-135m", help="bundled short name, Hub id or local folder")
    parser.add_argument(
        "--prompt",
        default="Name two prime numbers, one per line, then write </thought>.",
        help="the user turn to continue",
    )
    parser.add_argument("--n", type=int, default=2, help="completions")
    parser.add_argument(
        "--run-key", "--seed", type=int, default=0, help="the random key (--seed: its old name, deprecated)"
    )
    args = parser.parse_args(argv)
    cpu_share.for_script()  # torch's threads: this script's share of the cores
    engine = HFEngine(*models.load_model(args.model))
    text = engine.tokenizer.apply_chat_template(
        [{"role": "user", "content": args.prompt}], add_generation_prompt=True, tokenize=False
    )
    prompt = engine.tokenizer(text, add_special_tokens=False)["input_ids"]
    [completions] = engine.generate(
        [prompt], SamplingSettings(0.7, 0.95, 64, ("</thought>",), args.n, args.run_key)
    )
    for c in completions:
        print(f"[{c.finish_reason}, {len(c.token_ids)} tokens] {c.text!r}")
    return completions


if __name__ == "__main__":
    main()
