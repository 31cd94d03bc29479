"""Tokens of one T2S row while the loop still runs: the loop in a worker thread, its progress through a queue.

The loop is :meth:`T2SRunner.generate` itself (the ``t2s`` model's contract via :func:`run_t2s`, with an
``on_step`` hook), so the tokens are exactly those of the same unstreamed call. A thread, not a callback that
decodes inside the loop: the consumer (the SoVITS decoder, another Triton model) then works while the next
tokens are sampled.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping

import numpy as np

from gsv_triton.backend.cancel import NEVER, RequestCancelled, StopSignal
from gsv_triton.backend.t2s.batch import run_t2s

_DONE = object()


def stream_tokens(runner, inputs: Mapping[str, np.ndarray], stop: StopSignal = NEVER) -> Iterator[tuple[np.ndarray, bool]]:
    """``(tokens so far, final)`` of the single row of ``inputs`` (``t2s``'s tensors): progress after each step
    (the latest only, when the consumer is slower), then the row's final tokens once with ``final`` True.

    The final tokens are what the unstreamed call returns: at EOS a prefix-extension of the progress; at the
    ``max_new_tokens`` cap upstream's rule drops the first generated token, which the caller must handle.
    Leaving the iterator early (error, cancellation) stops the loop at its next step."""
    if np.asarray(inputs["phone_ids"]).shape[0] != 1:
        raise ValueError("stream_tokens streams one row")
    updates: queue.Queue = queue.Queue()
    abandoned = threading.Event()

    def on_step(generated: list[list[int]]) -> None:
        # run_t2s already checks ``stop`` between tokens; the hook adds the reader's going away and the progress.
        if abandoned.is_set():
            raise RequestCancelled("stopped: the stream's reader went away")
        updates.put((np.array(generated[0], dtype=np.int64), False))

    thread = threading.Thread(target=_run, args=(runner, inputs, stop, on_step, updates), name="t2s-stream",
                              daemon=True)  # fmt: skip
    thread.start()
    try:
        while True:
            item = updates.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            if not item[1]:  # progress: skip to the newest
                while not updates.empty():
                    nxt = updates.queue[0]
                    if nxt is _DONE or isinstance(nxt, BaseException) or nxt[1]:
                        break
                    item = updates.get()
            yield item
    finally:
        abandoned.set()
        thread.join()


def _run(runner, inputs: Mapping[str, np.ndarray], stop: StopSignal, on_step, updates: queue.Queue) -> None:
    try:
        out = run_t2s(runner, inputs, stop, on_step=on_step)
        updates.put((out["tokens"][0, : int(out["lengths"][0])].astype(np.int64), True))
    except BaseException as exc:  # handed to the consumer, which raises it
        updates.put(exc)
    finally:
        updates.put(_DONE)
