"""pipeline.py: Algorithm 2 prompt by prompt, with the engine kept full (App. H's serial dependency).

An optimisation, not part of the method: rrpo.reset_prompt() is Algorithm 2 as
written, and this schedule gives its buffers token for token (tests).

Algorithm 2 is sequential within one prompt: the seed search (lines 1-3), then
h* (lines 4-5, SRPO asks the policy), then the suffix group from x* (lines
6-7). Between prompts nothing is shared. Run phase by phase over a batch, every
prompt waits at each phase for the slowest one, and the engine decodes a
shrinking batch in each phase's tail: App. H measures SRPO's step at 1.51x
GRPO's wall clock for 1.08x its tokens, "reflecting the serial dependency of G2
on the self-localization step computed from G1". Here each prompt (and each of
its seeds) is a small state machine, a Python generator, that asks for samples
and waits only for its own; the scheduler hands every request to the engine as
soon as it is made, so a prompt whose seed has failed is localized and
resampled while other prompts are still searching.

Paper map
  Alg. 2, lines 1-7   per prompt and per seed: the machines of rrpo.py
                      (prompt_machine, seed_machine) run by Scheduler.run()
  App. H              wall clock vs tokens: the engine's fill per phase,
                      `time/phase/*` and `time/underfilled/*` (fill_metrics())

How a machine talks to the scheduler
  request = sched.sample(states, n, cfg, key, phase)          rollouts; non-blocking
  request = sched.generate(engine, prompts, settings, phase)   completions (localization)
  task = sched.spawn(machine)                                  another machine, run beside this one
  sched.cancel(request, rows)                                  drop rows not needed after all (speculation)
  yield                                                        wait until something of mine changed
  request.results / request.finished() / task.done, task.result
A machine decides only from finished results, in stream order, never from
timing, so every schedule gives the same buffer.

Schedules (`--schedule`)
  pipelined   every request goes to the engine's decoder at once; on the HF
              engine rows join the running batch token by token (engines.Decoder)
  phases      requests wait until every machine is blocked, then all of them
              run to the end as one batch (the phase-by-phase step)
  sequential  no scheduler: rrpo.reset_prompt(), one prompt after another

Symbols
  machine        -> a generator function's generator; what it returns is task.result
  request.rows   -> (prefix ids, watcher) per sample: ThoughtTracker (rollouts) or StopWatcher (completions)
  phase          -> the part of Algorithm 2 a request serves: "base" (GRPO), "search" (lines 1-3),
                    "localize" (line 5), "suffix" (line 7); the row's tag in the decoder's trace
  fill           -> live rows / capacity of a decoder step (HF engine: --gen-batch-size)

Choices, and why
  * Row keys are derived per prompt, per seed and per stream row (grpo.step_key),
    and the HF engine draws every row from its own key (engines.py), so a
    prompt's rollouts do not depend on the schedule: tests check the buffers.
  * Requests to another model (--localizer) run at once and synchronously on
    that model's engine; only the policy's engine is pipelined.
  * On an engine without a decoder of its own (vLLM) the pipelined schedule
    runs in rounds of generate calls, one thought per live rollout a round
    (engines.CallDecoder): a prompt's next request joins the next round.

Run it
  python srpo.py --demo                         # pipelined (the default)
  python srpo.py --demo --schedule phases       # phase by phase, the same buffers, for timing
  python srpo.py --demo --schedule sequential   # the reference, the same buffers
"""

import time
from collections import defaultdict

import engines
import thought_mdp as tm

CANCELLED = "cancelled"  # the result of a row dropped before its end (Scheduler.cancel)


class Request:
    """Samples one machine asked for: rows that finish one by one."""

    def __init__(self, rows, finish, phase):
        self.rows, self.finish, self.phase = rows, finish, phase  # finish(i, watcher) -> the result of row i
        self.results = [None] * len(rows)
        self.left = len(rows)

    @property
    def done(self):
        return self.left == 0

    def finished(self):
        """The results finished in order from the first row on (stream order), up to
        the first unfinished or cancelled row."""
        out = []
        for r in self.results:
            if r is None or r is CANCELLED:
                break
            out.append(r)
        return out


class Task:
    def __init__(self, machine):
        self.machine, self.done, self.result = machine, False, None

    def resume(self):
        try:
            next(self.machine)
        except StopIteration as stop:
            self.done, self.result = True, stop.value


class Scheduler:
    def __init__(self, engine, schedule="pipelined"):
        assert schedule in ("pipelined", "phases"), schedule
        self.engine, self.pipelined = engine, schedule == "pipelined"
        self.decoder = tm.decoder_for(engine)
        self.queue = []  # rows not yet decoding (phases)
        self.tasks = []  # every machine spawned, in order
        self.owner = {}  # id of a row's watcher -> (its request, its row number)
        self.other_s = defaultdict(float)  # seconds of requests run on other engines, per phase

    def _submit(self, request, settings):
        for i, (prefix, watcher) in enumerate(request.rows):
            self.owner[id(watcher)] = (request, i)
            row = (prefix, watcher, *settings[i], request.phase)  # temperature, top_p, key
            if self.pipelined:
                self.decoder.add(*row)
            else:
                self.queue.append(row)
        return request

    def sample(self, states, n, cfg, key, phase, first=0):
        """n rollouts from each state; row i draws from derive_key(key, first + i),
        as in thought_mdp.sample_rollouts."""
        rows = tm.sampling_rows(self.engine, states, n, cfg)
        settings = [
            (cfg.temperature, cfg.top_p, engines.derive_key(key, first + i)) for i in range(len(rows))
        ]

        def finish(i, tracker):
            return tm.to_rollout(rows[i][0], tracker, self.engine.tokenizer)

        return self._submit(Request([(s.ids, t) for s, t in rows], finish, phase), settings)

    def generate(self, engine, prompts, params, phase):
        """One completion for each prompt (params.n is 1) on `engine`: the policy's
        (pipelined with everything else) or another model's (run now)."""
        assert params.n == 1, "one completion per prompt"
        if engine is not self.engine:
            start = time.perf_counter()
            request = Request(prompts, None, phase)
            request.results, request.left = [c for [c] in engine.generate(prompts, params)], 0
            self.other_s[phase] += time.perf_counter() - start
            return request
        rows = [
            (p, engines.StopWatcher(engine.tokenizer, engine.eos_ids, params.stop, params.max_tokens))
            for p in prompts
        ]

        def finish(i, watcher):
            text = engine.tokenizer.decode(watcher.ids, skip_special_tokens=True)
            return engines.Completion(watcher.ids, text, watcher.finish_reason)

        keys = engines.row_keys(params, len(rows))
        return self._submit(
            Request(rows, finish, phase), [(params.temperature, params.top_p, k) for k in keys]
        )

    def cancel(self, request, rows):
        """Drop rows of `request`, finished or not (their results become CANCELLED);
        returns the tokens they had sampled."""
        tokens = 0
        for i in rows:
            if request.results[i] is CANCELLED:
                continue
            watcher = request.rows[i][1]
            tokens += len(watcher.ids)
            if request.results[i] is None:  # still sampling or waiting
                self.owner.pop(id(watcher))
                self.queue = [q for q in self.queue if q[1] is not watcher]
                self.decoder.cancel(watcher)
                request.left -= 1
            request.results[i] = CANCELLED
        return tokens

    def spawn(self, machine):
        task = Task(machine)
        self.tasks.append(task)
        task.resume()  # it runs up to its first wait (and submits its first requests)
        return task

    def _resume_all(self):
        """Resume every waiting machine, again while some finished (its parent may wait on it)."""
        ended = True
        while ended:
            ended, i = False, 0
            while i < len(self.tasks):  # tasks spawned meanwhile are appended and run in this pass too
                if not self.tasks[i].done:
                    self.tasks[i].resume()
                    ended = ended or self.tasks[i].done
                i += 1

    def _finish(self, rows):
        for row in rows:
            request, i = self.owner.pop(id(row.watcher))
            request.results[i] = request.finish(i, row.watcher)
            request.left -= 1

    def run(self, machines):
        """Run the machines to their ends; returns their results, in order."""
        tasks = [self.spawn(m) for m in machines]
        while not all(t.done for t in self.tasks):
            if not self.pipelined:  # a phase: everything asked for so far, as one batch, to the end
                for row in self.queue:
                    self.decoder.add(*row)
                self.queue = []
            if not self.decoder.busy:
                raise RuntimeError("every machine waits, yet nothing is being sampled")
            if self.pipelined:
                finished = self.decoder.step()
                if not finished:  # a machine changes only when one of its rows finishes
                    continue
                self._finish(finished)
            else:
                while self.decoder.busy:
                    self._finish(self.decoder.step())
            self._resume_all()
        return [t.result for t in tasks]

    def fill_metrics(self):
        """Where the engine's time went: per phase, its share of every decoder step
        (by rows), and of the steps with free slots (the engine under-filled); on the
        HF engine also the prompt tokens it prefilled."""
        total, under = defaultdict(float), defaultdict(float)
        for seconds, live, tags in self.decoder.trace:
            for tag in tags:
                total[tag] += seconds / live
                if self.decoder.capacity and live < self.decoder.capacity:
                    under[tag] += seconds / live
        m = {f"time/phase/{p}_s": s for p, s in total.items()}
        m.update({f"time/underfilled/{p}_s": s for p, s in under.items()})
        for p, s in self.other_s.items():
            m[f"time/phase/{p}_s"] = m.get(f"time/phase/{p}_s", 0.0) + s
        m["time/underfilled_s"] = sum(under.values())
        m["engine/decode_steps"] = len(self.decoder.trace)
        if hasattr(
            self.decoder, "prefilled"
        ):  # HF engine: prompt tokens run through the model (shared prefixes once)
            m["engine/prefill_tokens"] = self.decoder.prefilled
        if self.decoder.capacity and self.decoder.trace:
            busy = sum(s for s, _, _ in self.decoder.trace)
            m["time/fill"] = sum(s * live for s, live, _ in self.decoder.trace) / busy / self.decoder.capacity
        return m


def finished_prefix(requests):
    """The results finished in order across `requests` (rounds of one stream), up to
    the first row still sampling or dropped: the part of the stream a machine may
    decide from."""
    out = []
    for request in requests:
        part = request.finished()
        out += part
        if len(part) < len(request.rows):
            break
    return out


def wait(*pending):
    """`yield from wait(request_or_task, ...)`: wait until all of them are done."""
    while not all(p.done for p in pending):
        yield


def sample_all(engine, states, n, cfg, keys, schedule):
    """n rollouts from each state, state b's rows keyed from keys[b], in one running
    batch: GRPO's step. Returns (rollouts per state, fill metrics)."""
    sched = Scheduler(engine, schedule)
    requests = [sched.sample([x0], n, cfg, key, "base") for x0, key in zip(states, keys)]
    sched.run([wait(*requests)])
    return [r.results for r in requests], sched.fill_metrics()
