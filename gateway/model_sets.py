"""Model sets on demand: which fine-tunes Triton holds, loading the one a request names, unloading idle ones.

Triton runs in explicit model-control mode and loads the shared models and the default set at start
(:func:`gsv_triton.model_sets.startup_models`). Here the gateway

* learns the sets from Triton's repository index (a set is listed by its ``t2s`` model), read again whenever a
  request names a set it does not know, so a set exported while everything runs is found;
* loads a set's four networks on its first request (or ``POST /v1/models/{name}/load``); requests for a set
  being loaded wait for that one load, bounded by ``GSV_MODEL_LOAD_TIMEOUT_S``;
* keeps at most ``GSV_MAX_LOADED_MODEL_SETS`` sets loaded: loading one more unloads the least recently used set
  that has no request in flight. When every loaded set is busy, the load waits for one to finish (up to half
  the load timeout) and then answers 503 with Retry-After;
* counts each set's requests in flight (:meth:`ModelSets.use`), so a set is never unloaded under a request.

One gateway manages one Triton's sets: with several gateway replicas in front of one Triton, each counts only
its own requests (README, "Many fine-tunes in one server"; deploy/README.md, "Model sets and several gateways").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from gsv_triton.errors import InputError
from gsv_triton.model_sets import MODEL_FIELD, check_set_name, set_models, set_of_model

from .errors import GatewayError, Overloaded
from .triton import ModelLoadFailed, TritonVoiceClone

log = logging.getLogger("gsv_gateway.model_sets")

READY = "READY"
RETRY_AFTER_S = 5
# The share of the load timeout a load may wait for a busy set to finish before it answers "all busy".
BUSY_WAIT_SHARE = 0.5
STATUS_CONFLICT = 409


class ModelSetBusy(GatewayError):
    """An unload asked for a set that has requests in flight."""

    status = STATUS_CONFLICT


@dataclass
class SetEntry:
    """What the gateway knows of one set."""

    name: str
    loaded: bool = False
    in_flight: int = 0
    last_used: float = 0.0  # monotonic seconds of the last request's start (0: never)
    loads: int = 0
    last_error: str = ""
    loading: asyncio.Task | None = None
    changing: bool = False  # a load or unload of it is under way: the index may show it half loaded

    def state(self) -> str:
        if self.changing:
            return "loading" if not self.loaded else "unloading"
        return "loaded" if self.loaded else "unloaded"


class ModelSets:
    """The model sets of the Triton behind ``triton`` (one per gateway process)."""

    def __init__(self, triton: TritonVoiceClone, default: str, max_loaded: int, load_timeout_s: float) -> None:
        self.triton = triton
        self.default = default
        self.max_loaded = max_loaded
        self.load_timeout_s = load_timeout_s
        self._sets: dict[str, SetEntry] = {}
        self._lock = asyncio.Lock()  # one load or unload at a time: they compete for the same cores
        self._released = asyncio.Condition()

    # -- what there is ---------------------------------------------------------------------------------------
    async def refresh(self) -> dict[str, SetEntry]:
        """Read Triton's repository index: sets appear and disappear with their ``t2s`` model, and a set is
        loaded when all four of its networks are READY."""
        states = await self.triton.model_states()
        names = {n for n in (set_of_model(m) for m in states) if n is not None}
        for name in names - self._sets.keys():
            self._sets[name] = SetEntry(name)
        for name in list(self._sets):
            entry = self._sets[name]
            if name not in names and entry.in_flight == 0:
                del self._sets[name]
                continue
            if not entry.changing:
                entry.loaded = all(states.get(m) == READY for m in set_models(name))
        return self._sets

    async def entry(self, name: str | None) -> SetEntry:
        """The set ``name`` names (None or empty: the default); 404 naming the sets there are."""
        model_set = self.default if not name else check_set_name(name)
        if model_set not in self._sets:
            await self.refresh()
        if model_set not in self._sets:
            raise InputError(MODEL_FIELD, f"unknown model set {model_set!r}; this server has: "
                             f"{', '.join(sorted(self._sets)) or 'none'}", status=404)  # fmt: skip
        return self._sets[model_set]

    # -- requests --------------------------------------------------------------------------------------------
    @asynccontextmanager
    async def use(self, name: str | None) -> AsyncIterator[str]:
        """Hold set ``name`` (None: the default) loaded for one request; yields the set's name.

        The index is read on every request (one small gRPC call, retried once on a fresh connection like any
        unary call): a Triton restarted by its supervisor has only its startup models loaded again, and a Triton
        that cannot be reached is a quick 503."""
        if name:
            check_set_name(name)  # a bad name is a 400 even while Triton is down
        await self.refresh()
        entry = await self.entry(name)
        entry.in_flight += 1  # first: from here on no load of another set unloads this one
        entry.last_used = time.monotonic()
        try:
            if not entry.loaded or entry.changing:
                await self._wait_loaded(entry)
            yield entry.name
        finally:
            entry.in_flight -= 1
            async with self._released:
                self._released.notify_all()

    async def load(self, name: str) -> SetEntry:
        """``POST /v1/models/{name}/load``: load the set now (a no-op when it is loaded)."""
        entry = await self.entry(name)
        entry.last_used = time.monotonic()
        await self._wait_loaded(entry)
        return entry

    async def unload(self, name: str) -> SetEntry:
        """``POST /v1/models/{name}/unload``: 409 while the set has requests in flight."""
        entry = await self.entry(name)
        async with self._lock:
            if entry.in_flight:
                raise ModelSetBusy(f"{MODEL_FIELD}: model set {entry.name!r} has {entry.in_flight} request(s) in "
                                   "flight; unload it when they are done", MODEL_FIELD)  # fmt: skip
            await self._unload(entry)
        return entry

    # -- loading and unloading -------------------------------------------------------------------------------
    async def _wait_loaded(self, entry: SetEntry) -> None:
        """Load ``entry`` (or join the load under way; the load task bounds itself by the load timeout)."""
        if entry.loading is None or entry.loading.done():
            entry.loading = asyncio.create_task(self._load_within_timeout(entry))
            # A waiter that goes away (its client did) leaves the load running; its outcome is read here.
            entry.loading.add_done_callback(lambda task: task.cancelled() or task.exception())
        await asyncio.shield(entry.loading)

    async def _load_within_timeout(self, entry: SetEntry) -> None:
        try:
            async with asyncio.timeout(self.load_timeout_s):
                await self._load(entry)
        except TimeoutError:
            raise Overloaded(f"{MODEL_FIELD}: model set {entry.name!r} did not load within "
                             f"{self.load_timeout_s:g} s (GSV_MODEL_LOAD_TIMEOUT_S); try again in a moment",
                             retry_after_s=RETRY_AFTER_S) from None  # fmt: skip

    async def _load(self, entry: SetEntry) -> None:
        async with self._lock:
            await self.refresh()
            if entry.loaded:
                return
            await self._make_room(entry)
            started = time.monotonic()
            entry.changing = True
            try:
                for model in set_models(entry.name):
                    await self.triton.load_model(model, self.load_timeout_s)
            except ModelLoadFailed as exc:
                entry.last_error = exc.reason
                for model in set_models(entry.name):  # no half-loaded set keeps its memory
                    with contextlib.suppress(GatewayError):
                        await self.triton.unload_model(model)
                log.error("model set failed to load", extra={"fields": {"model_set": entry.name,
                                                                         "reason": exc.reason}})  # fmt: skip
                raise ModelLoadFailed(exc.model, f"model set {entry.name!r} is unusable: {exc.reason}") from None
            finally:
                entry.changing = False
            entry.loaded, entry.loads, entry.last_error = True, entry.loads + 1, ""
            log.info("model set loaded", extra={"fields": {"model_set": entry.name,
                                                           "seconds": round(time.monotonic() - started, 2)}})

    async def _make_room(self, entry: SetEntry) -> None:
        """Unload least recently used idle sets until one more fits; waits while all are busy (until a margin
        before the load timeout, so the caller hears why)."""
        deadline = time.monotonic() + BUSY_WAIT_SHARE * self.load_timeout_s
        while True:
            loaded = [e for e in self._sets.values() if e.loaded and e is not entry]
            if len(loaded) < self.max_loaded:
                return
            idle = [e for e in loaded if e.in_flight == 0]
            if idle:
                await self._unload(min(idle, key=lambda e: e.last_used))
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise Overloaded(f"{MODEL_FIELD}: all {self.max_loaded} loaded model sets "
                                 "(GSV_MAX_LOADED_MODEL_SETS) have requests in flight; try again in a moment",
                                 retry_after_s=RETRY_AFTER_S)  # fmt: skip
            async with self._released:
                try:
                    await asyncio.wait_for(self._released.wait(), left)
                except TimeoutError:
                    pass

    async def _unload(self, entry: SetEntry) -> None:
        entry.changing = True
        try:
            for model in set_models(entry.name):
                await self.triton.unload_model(model)
        finally:
            entry.changing = False
        entry.loaded = False
        log.info("model set unloaded", extra={"fields": {"model_set": entry.name}})

    # -- GET /v1/models --------------------------------------------------------------------------------------
    async def describe(self) -> list[dict]:
        """Every known set and its state (what the gateway last saw when Triton cannot be asked now)."""
        with contextlib.suppress(GatewayError):
            await self.refresh()
        now = time.monotonic()
        return [
            {
                "name": e.name,
                "state": e.state(),
                "default": e.name == self.default,
                "in_flight": e.in_flight,
                "idle_s": round(now - e.last_used, 1) if e.last_used else None,
                "loads": e.loads,
                "last_error": e.last_error or None,
                "triton_models": list(set_models(e.name)),
            }
            for e in sorted(self._sets.values(), key=lambda e: e.name)
        ]
