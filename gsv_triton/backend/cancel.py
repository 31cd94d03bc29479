"""When to stop working on a request: its deadline passed, or its client went away.

A :class:`StopSignal` travels with a request through the orchestrator and, as request parameters
(``gsv_triton.contract``), to ``t2s`` in another stub process. Work checks it between steps (network calls,
sentence pieces, T2S tokens) and raises :class:`RequestCancelled`.

Triton tells an orchestrator that its request was cancelled (``request.is_cancelled()``, gRPC cancellation) but
not the BLS calls it made: :class:`CancelWatch` polls the flag beside the work and raises a *cancel flag* that
the other process can see, an empty file in ``/dev/shm`` named by a random token. The file exists only from a
cancellation to the end of that request (a check of a missing file costs about a microsecond per step).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from gsv_triton.contract import CANCEL_PARAMETER, DEADLINE_PARAMETER, DEADLINE_PASSED, PIECE_TIMEOUT_PARAMETER

FLAG_DIR = Path("/dev/shm")
FLAG_PREFIX = "gsv_cancel_"
WATCH_INTERVAL_S = 0.1


class RequestCancelled(Exception):
    """Work for a request stopped because its deadline passed or its client went away."""


@dataclass(frozen=True)
class StopSignal:
    """``deadline``: wall-clock seconds since the epoch (None: none); ``flag``: the cancel flag's token."""

    deadline: float | None = None
    flag: str | None = None

    @property
    def flag_path(self) -> Path | None:
        return FLAG_DIR / f"{FLAG_PREFIX}{self.flag}" if self.flag else None

    def reason(self) -> str | None:
        """Why work should stop now, or None to go on."""
        if self.deadline is not None and time.time() > self.deadline:
            return f"{DEADLINE_PASSED} (the client stopped waiting)"
        path = self.flag_path
        if path is not None and path.exists():
            return "it was cancelled (the client went away)"
        return None

    def check(self) -> None:
        """Raise :class:`RequestCancelled` when work should stop."""
        reason = self.reason()
        if reason is not None:
            raise RequestCancelled(f"stopped: {reason}")

    def parameters(self) -> dict[str, str]:
        """The request parameters that carry this signal to a BLS call (BLS takes bool, int or str values)."""
        out: dict[str, str] = {}
        if self.deadline is not None:
            out[DEADLINE_PARAMETER] = repr(self.deadline)
        if self.flag:
            out[CANCEL_PARAMETER] = self.flag
        return out

    def with_deadline(self, deadline: float | None) -> StopSignal:
        """This signal with the earlier of its deadline and ``deadline``."""
        if deadline is None or (self.deadline is not None and self.deadline <= deadline):
            return self
        return StopSignal(deadline, self.flag)


NEVER = StopSignal()


def parse_parameters(text: str | None) -> dict[str, object]:
    """A Triton request's parameters (``request.parameters()``, a JSON object) as a dict ({} when absent or bad)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number == number and number > 0 else None  # NaN and non-positive: ignored


def signal_from_parameters(parameters: Mapping[str, object]) -> StopSignal:
    """The stop signal a request carries (its deadline and cancel flag; NEVER when it carries none)."""
    flag = parameters.get(CANCEL_PARAMETER)
    token = flag if isinstance(flag, str) and flag.isalnum() else None  # a file name: nothing else gets in
    return StopSignal(_number(parameters.get(DEADLINE_PARAMETER)), token)


def piece_timeout(parameters: Mapping[str, object]) -> float | None:
    """The streaming model's per-piece timeout in seconds (None: none)."""
    return _number(parameters.get(PIECE_TIMEOUT_PARAMETER))


@contextlib.contextmanager
def cancel_watch(signal: StopSignal, is_cancelled: Callable[[], bool]) -> Iterator[StopSignal]:
    """``signal`` with a cancel flag that is raised when ``is_cancelled()`` turns true (polled in a thread every
    :data:`WATCH_INTERVAL_S`) while the block runs; the flag file is removed afterwards."""
    watched = StopSignal(signal.deadline, uuid.uuid4().hex)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(WATCH_INTERVAL_S):
            if is_cancelled():
                watched.flag_path.touch()  # type: ignore[union-attr]
                return

    thread = threading.Thread(target=watch, name="cancel-watch", daemon=True)
    thread.start()
    try:
        yield watched
    finally:
        done.set()
        thread.join()
        with contextlib.suppress(FileNotFoundError):
            watched.flag_path.unlink()  # type: ignore[union-attr]
