"""Admission: at most ``GSV_MAX_IN_FLIGHT`` requests of this gateway wait on Triton at once.

One more is refused at once with 503 and ``Retry-After`` instead of queueing behind the others until its
deadline: under a burst, clients learn quickly that they should come back (or go to another replica), and the
requests admitted keep their normal latency. Triton bounds its own queue too (``dynamic_batching`` queue policy
of the public models), for deployments with several gateways.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .errors import Overloaded

RETRY_AFTER_S = 1


class Admission:
    """A counter of requests in flight with a hard cap (the event loop is single-threaded: no lock needed)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.refused = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the ``limit`` slots for the block; Overloaded (503, Retry-After) when none is free."""
        if self.in_flight >= self.limit:
            self.refused += 1
            raise Overloaded(
                f"the gateway already has {self.limit} requests in flight (GSV_MAX_IN_FLIGHT); try again in a moment",
                retry_after_s=RETRY_AFTER_S,
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
