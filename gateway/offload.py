"""CPU work of a request: inline on the event loop when it is known to be small, else in a worker thread.

A hop to the thread pool and back costs about 0.2-0.5 ms of CPU on this project's 2-core hosts (measured with
py-spy on the gateway), more than encoding a second of output audio (0.3 ms). So such work runs inline; only work whose cost can grow (long audio, compressed
codecs) goes to a thread, and the event loop never stalls for more than about a millisecond.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")

# Output audio encoded inline: WAV + base64 (or raw PCM) of this many samples takes about 1 ms.
INLINE_MAX_SAMPLES = 3 * 32_000


async def run_cpu(inline: bool, func: Callable[..., T], *args: object) -> T:
    """``func(*args)``: right here when ``inline``, else in a worker thread."""
    if inline:
        return func(*args)
    return await run_in_threadpool(func, *args)
