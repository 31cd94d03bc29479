"""Continuous batching of independent T2S requests on one :class:`TorchT2SRunner` (cross-request batching).

A decode step of the GPT costs about the same for 1 row as for 16 on a GPU (it reads the weights once), so
throughput under concurrency needs the rows of different requests in one step. Any thread may ``submit`` a
request (a Future comes back); one worker thread owns the runner and its static cache, whose rows are *lanes*:

* a request waits until its rows fit in free lanes, is prefilled alone (eagerly) into them, and from the next
  step on decodes together with every other active lane, each row at its own slot and position;
* a finished row frees its lane at once, so queued requests join mid-flight (no waiting for the batch to drain);
* the step runs the smallest batch bucket covering the highest busy lane, as one CUDA graph per (bucket, window);
  :meth:`T2SEngine.warm_up` captures all of them at load, and again after the cache grows (only ever while no
  lane is busy), so a capture never stalls the lanes in flight.

Rows stay independent: each keeps its own sampling state (ids seen, a generator seeded from the request), and the
stop rules are :class:`TorchT2SRunner`'s, so a request's tokens equal what ``TorchT2SRunner.generate`` gives it
alone (exactly on the CPU in float32; on CUDA up to float16 rounding of a different batch size).

The ``t2s`` model can use it only where one instance receives concurrent requests: a decoupled model with
``async def execute`` (tritonserver 2.51 runs those concurrently in one instance); see perf/README.md.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import torch

from gsv_triton.backend.t2s.loop import T2SBatch, finished_row, sample_step
from gsv_triton.backend.t2s.torch_runner import CONTEXT_BUCKET, TorchT2SRunner, _StepInputs, batch_bucket, batch_buckets
from gsv_triton.errors import InputError

DEFAULT_LANES = 16


@dataclass
class _Request:
    batch: T2SBatch
    future: Future = field(default_factory=Future)
    results: list[np.ndarray | None] = field(default_factory=list)
    open_rows: int = 0


@dataclass
class _Lane:
    """One row of one request, decoding in one cache row."""

    request: _Request
    row: int
    rng: np.random.Generator
    seen: np.ndarray  # [V] bool
    logits: np.ndarray  # [V] float32: the logits the next sample is drawn from
    ty: int
    slot: int  # cache positions valid before this row's next token
    step: int = 0
    generated: list[int] = field(default_factory=list)


class T2SEngine:
    """``submit(...)`` from any thread; one worker decodes every admitted row in shared steps."""

    def __init__(self, runner: TorchT2SRunner, lanes: int = DEFAULT_LANES) -> None:
        self.runner = runner
        self.lanes = batch_bucket(max(1, lanes))
        self._pending: queue.Queue[_Request | None] = queue.Queue()
        self._waiting: list[_Request] = []
        self._busy: dict[int, _Lane] = {}
        self._full: _StepInputs | None = None
        self._views: dict[int, _StepInputs] = {}
        self._closed = False
        self._warmed = False  # warm_up ran: a grown cache is captured again before decoding in it
        self._warm_windows: int | None = None
        self._worker = threading.Thread(target=self._run, name="t2s-engine", daemon=True)
        self._worker.start()

    # -- public -----------------------------------------------------------------------------------------------
    def submit(self, phone_ids, bert, prompt_codes, **settings) -> Future:
        """Queue one request (arguments as :meth:`TorchT2SRunner.generate`); the Future's result is its tokens."""
        if self._closed:
            raise RuntimeError("the T2S engine is closed")
        # The shared decode loop does not stop one request early: a request past its deadline finishes here
        # (t2s forwards no stop signal to the engine; the orchestrator stops after this call).
        settings.pop("should_stop", None)
        batch = self.runner.batch(phone_ids, bert, prompt_codes, **settings)
        if batch.rows > self.lanes:
            raise InputError("phone_ids", f"{batch.rows} rows exceed the engine's {self.lanes} lanes")
        request = _Request(batch)
        self._pending.put(request)
        return request.future

    def generate(self, phone_ids, bert, prompt_codes, **kwargs) -> list[np.ndarray]:
        """Blocking form of :meth:`submit`: a drop-in for ``TorchT2SRunner.generate`` in ``run_t2s``."""
        return self.submit(phone_ids, bert, prompt_codes, **kwargs).result()

    def warm_up(self, windows: int | None = None) -> int:
        """Capture the step graphs of every batch bucket now (CUDA): every attention window of the cache, or the
        first ``windows``, so the first requests at each concurrency do not pay for captures; a no-op on the CPU.
        Call it before the first ``submit`` (the worker is idle then). Returns the number of graphs held."""
        runner = self.runner
        if not runner.use_graphs:
            return 0
        self._warmed, self._warm_windows = True, windows
        self._ensure_cache(CONTEXT_BUCKET if windows is None else windows * CONTEXT_BUCKET)
        self._capture()
        return runner.graph_count

    def _capture(self) -> None:
        self.runner.capture(self._inputs, batch_buckets(self.lanes), self._warm_windows)

    def close(self) -> None:
        self._closed = True
        self._pending.put(None)
        self._worker.join()

    @property
    def busy_lanes(self) -> int:
        return len(self._busy)

    # -- worker -----------------------------------------------------------------------------------------------
    def _run(self) -> None:
        placement = self.runner.placement
        device = torch.cuda.device(placement.device) if placement.is_cuda else contextlib.nullcontext()
        with torch.no_grad(), device:
            while True:
                if not self._take_new(block=not self._busy and not self._waiting):
                    break
                try:
                    self._admit()
                    if self._busy:
                        self._advance()
                except Exception as exc:  # fail what is in flight, keep serving the next requests
                    self._fail_all(exc)

    def _fail_all(self, exc: Exception) -> None:
        requests = [s.request for s in self._busy.values()] + self._waiting
        for request in requests:
            if not request.future.done():
                request.future.set_exception(exc)
        self._busy.clear()
        self._waiting.clear()

    def _take_new(self, block: bool) -> bool:
        """Move newly submitted requests to the waiting list; False once closed and drained."""
        try:
            item = self._pending.get(block=block)
            while True:
                if item is None:
                    self._closed = True
                else:
                    self._waiting.append(item)
                item = self._pending.get_nowait()
        except queue.Empty:
            pass
        return not (self._closed and not self._busy and not self._waiting and self._pending.empty())

    def _inputs(self, rows: int) -> _StepInputs:
        """Step inputs over the first ``rows`` lanes: slices of the one lane layout (a lane never moves)."""
        if rows not in self._views:
            full = self._full
            self._views[rows] = _StepInputs(kv=full.kv[:, :, :rows], control=full.control[:, :rows],
                                            base_valid=full.base_valid[:rows])  # fmt: skip
        return self._views[rows]

    def _ensure_cache(self, positions: int) -> None:
        """The runner's cache with a row per lane and ``positions`` positions (the lane layout is fixed from here)."""
        self.runner._reserve(self.lanes, positions)
        self._full = self.runner._inputs_for(self.lanes)
        self._views.clear()

    def _admit(self) -> None:
        """Prefill waiting requests (first come, first served) into free lanes while they fit."""
        while self._waiting:
            request = self._waiting[0]
            batch = request.batch
            free = [lane for lane in range(self.lanes) if lane not in self._busy]
            tx = max(len(p) for p in batch.phones)
            needed = tx + batch.prompts.shape[1] + batch.max_new_tokens
            if len(free) < batch.rows:
                return
            if self._full is None or needed > self.runner._context:
                if self._busy:
                    return  # growing the cache drops its contents: wait until the running rows are done
                self._ensure_cache(needed)
                if self._warmed:
                    self._capture()  # no lane is busy: the captures delay nobody in flight
            self._waiting.pop(0)
            lanes = np.array(free[: batch.rows], dtype=np.int64)
            try:
                lengths = np.array([len(p) for p in batch.phones], dtype=np.int64)
                logits = self.runner._prefill(batch.phones, batch.berts, lengths, batch.prompts, self._full, lanes)
            except Exception as exc:  # a bad request must not stop the engine
                request.future.set_exception(exc)
                continue
            request.results = [None] * batch.rows
            request.open_rows = batch.rows
            ty = batch.prompts.shape[1]
            seen = batch.seen_tokens(self.runner.vocab)  # [rows, V]: each lane owns its row
            for row, lane in enumerate(lanes):
                self._busy[int(lane)] = _Lane(request, row, np.random.default_rng(batch.seeds[row]), seen[row],
                                              logits[row], ty, slot=tx + ty)  # fmt: skip

    def _advance(self) -> None:
        """Sample every busy lane (the runner's rules), then one shared step for the lanes still running."""
        runner = self.runner
        groups: dict[int, list[int]] = {}
        for lane, state in self._busy.items():
            suppress = state.step < runner.min_tokens_before_eos or not state.request.batch.eos_enabled
            groups.setdefault(runner.eos if suppress else runner.vocab, []).append(lane)
        feed = np.zeros(self.lanes, dtype=np.int64)
        for width, lanes in groups.items():
            states = [self._busy[lane] for lane in lanes]
            tokens, stops = sample_step(
                np.stack([s.logits for s in states]), np.stack([s.seen for s in states]),
                [s.request.batch.params for s in states], [s.rng for s in states], eos=runner.eos,
                suppress_eos=width == runner.eos,
            )  # fmt: skip
            for i, (lane, state) in enumerate(zip(lanes, states, strict=True)):
                token = int(tokens[i])
                at_cap = state.step == state.request.batch.max_new_tokens - 1
                done = finished_row(state.generated, token, bool(stops[i]), at_cap)
                if done is not None:
                    self._finish(lane, done)
                else:
                    state.generated.append(token)
                    state.seen[token] = True
                    feed[lane] = token
        if not self._busy:
            return
        rows = batch_bucket(max(self._busy) + 1)
        position = np.zeros(rows, dtype=np.int64)
        slot = np.zeros(rows, dtype=np.int64)
        for lane, state in self._busy.items():
            position[lane], slot[lane] = state.ty + state.step, state.slot
        logits = runner._step(self._inputs(rows), rows, feed[:rows], position, slot)
        for lane, state in self._busy.items():
            state.logits = logits[lane]
            state.step += 1
            state.slot += 1

    def _finish(self, lane: int, tokens: np.ndarray) -> None:
        state = self._busy.pop(lane)
        request = state.request
        request.results[state.row] = tokens
        request.open_rows -= 1
        if request.open_rows == 0:
            request.future.set_result(list(request.results))
