"""The gateway's model-set rules (gateway/model_sets.py) against a fake Triton repository API: least recently
used idle set unloaded first, never a set with a request in flight, one load shared by concurrent requests,
bounded waits, failed loads leave nothing half loaded. (The real server: tests/test_model_sets.py.)"""

from __future__ import annotations

import asyncio

import pytest

from gsv_gateway.errors import Overloaded
from gsv_gateway.model_sets import ModelSetBusy, ModelSets
from gsv_gateway.triton import ModelLoadFailed
from gsv_triton.errors import InputError
from gsv_triton.model_sets import set_models


class FakeTriton:
    """Triton's repository index and load/unload calls, with a log of what was done."""

    def __init__(self, sets: tuple[str, ...], loaded: tuple[str, ...] = ("default",), load_s: float = 0.01) -> None:
        self.states = {m: ("READY" if s in loaded else "") for s in sets for m in set_models(s)}
        self.load_s = load_s
        self.calls: list[tuple[str, str]] = []
        self.broken: set[str] = set()

    async def model_states(self) -> dict[str, str]:
        return dict(self.states)

    async def load_model(self, model: str, timeout_s: float) -> None:
        self.calls.append(("load", model))
        await asyncio.sleep(self.load_s)
        if model in self.broken:
            raise ModelLoadFailed(model, "file not found")
        self.states[model] = "READY"

    async def unload_model(self, model: str) -> None:
        self.calls.append(("unload", model))
        self.states[model] = "UNAVAILABLE"

    def loaded(self) -> list[str]:
        names = {m.rpartition("__")[0] or "default" for m, s in self.states.items() if s == "READY"}
        return sorted(n for n in names if all(self.states[m] == "READY" for m in set_models(n)))


def _run(coro):
    return asyncio.run(coro)


def test_least_recently_used_idle_set_goes_first() -> None:
    async def scenario() -> list[str]:
        triton = FakeTriton(("default", "a", "b"))
        sets = ModelSets(triton, "default", max_loaded=2, load_timeout_s=5)
        async with sets.use("a"):
            pass
        async with sets.use(None):  # default is now the most recently used
            pass
        async with sets.use("b"):  # unloads a, the least recently used
            pass
        return triton.loaded()

    assert _run(scenario()) == ["b", "default"]


def test_a_set_in_flight_is_never_unloaded() -> None:
    async def scenario() -> None:
        triton = FakeTriton(("default", "a", "b"))
        sets = ModelSets(triton, "default", max_loaded=2, load_timeout_s=5)
        async with sets.use("a"):
            async with sets.use(None):
                pass
            # a is the least recently used, but in flight: default goes instead
            async with sets.use("b"):
                assert triton.loaded() == ["a", "b"]
            with pytest.raises(ModelSetBusy):
                await sets.unload("a")
        assert (await sets.unload("a")).state() == "unloaded"

    _run(scenario())


def test_all_sets_busy_waits_then_overloaded() -> None:
    async def scenario() -> None:
        triton = FakeTriton(("default", "a"))
        sets = ModelSets(triton, "default", max_loaded=1, load_timeout_s=0.3)
        async with sets.use(None):
            with pytest.raises(Overloaded, match="have requests in flight"):
                async with sets.use("a"):
                    pass
        # once default is idle the same request goes through
        async with sets.use("a"):
            assert triton.loaded() == ["a"]

    _run(scenario())


def test_a_waiting_load_proceeds_when_a_set_frees() -> None:
    async def scenario() -> None:
        triton = FakeTriton(("default", "a"))
        sets = ModelSets(triton, "default", max_loaded=1, load_timeout_s=5)

        async def hold() -> None:
            async with sets.use(None):
                await asyncio.sleep(0.2)

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0.05)
        async with sets.use("a"):
            assert holder.done() and triton.loaded() == ["a"]

    _run(scenario())


def test_concurrent_requests_share_one_load() -> None:
    async def scenario() -> None:
        triton = FakeTriton(("default", "a"), load_s=0.05)
        sets = ModelSets(triton, "default", max_loaded=2, load_timeout_s=5)

        async def request() -> str:
            async with sets.use("a") as name:
                return name

        assert await asyncio.gather(*(request() for _ in range(5))) == ["a"] * 5
        assert [c for c in triton.calls if c[0] == "load"] == [("load", m) for m in set_models("a")]

    _run(scenario())


def test_unknown_and_broken_sets() -> None:
    async def scenario() -> None:
        triton = FakeTriton(("default", "a", "b"))
        triton.broken.add("a__sovits_decode")
        sets = ModelSets(triton, "default", max_loaded=3, load_timeout_s=5)
        with pytest.raises(InputError) as unknown:
            async with sets.use("zed"):
                pass
        assert unknown.value.status == 404 and "a, b, default" in str(unknown.value)
        with pytest.raises(InputError, match="lower-case"):
            async with sets.use("Zed"):
                pass
        with pytest.raises(ModelLoadFailed, match="model set 'a' is unusable: file not found"):
            async with sets.use("a"):
                pass
        assert all(triton.states[m] != "READY" for m in set_models("a"))  # nothing half loaded
        info = {s["name"]: s for s in await sets.describe()}
        assert info["a"]["last_error"] == "file not found" and info["a"]["state"] == "unloaded"
        async with sets.use("b"):  # the others keep working
            pass

    _run(scenario())


def test_a_restarted_triton_is_noticed() -> None:
    """Triton restarted by its supervisor has only its startup models: the next request loads the set again."""

    async def scenario() -> None:
        triton = FakeTriton(("default", "a"))
        sets = ModelSets(triton, "default", max_loaded=2, load_timeout_s=5)
        async with sets.use("a"):
            pass
        for model in set_models("a"):
            triton.states[model] = ""
        async with sets.use("a"):
            assert triton.loaded() == ["a", "default"]
        assert sum(1 for c in triton.calls if c == ("load", "a__t2s")) == 2

    _run(scenario())
