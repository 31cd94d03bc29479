"""The Python-backend stub processes of one tritonserver, read from ``/proc``, and their shared-memory regions.

Triton starts one ``triton_python_backend_stub`` per model instance, as its own child, with a command line
that names everything we need (python_backend's ``StubLauncher``)::

    triton_python_backend_stub <repo>/<model>/<version>/model.py <shm region> <shm size> <growth> <parent pid>
                               <backend dir> <ipc size> <instance name> <execution env>

The region lives in ``/dev/shm`` under the prefix the server was started with
(``--backend-config=python,shm-region-prefix-name=...``), so the regions of one server are found by prefix
once that server and its stubs are gone.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

STUB_NAME = "triton_python_backend_stub"
SHM_DIR = Path("/dev/shm")
PROC = Path("/proc")
# Positions in the stub's argv (after the binary itself).
_MODEL_FILE, _REGION, _INSTANCE = 1, 2, 8


@dataclass(frozen=True)
class Stub:
    """One stub process: the model instance it runs and the shared-memory region it talks through."""

    pid: int
    model: str  # the model's folder name in the repository (= its Triton name)
    instance: str  # Triton's instance name, e.g. "t2s_0_1"
    region: str  # name in /dev/shm
    start_ticks: int  # process start time (clock ticks since boot): tells a restarted pid apart


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name (state is field 0, ppid 1, start time 19)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _stub(pid: int, argv: list[str]) -> Stub | None:
    if len(argv) <= _INSTANCE or Path(argv[0]).name != STUB_NAME:
        return None
    fields = _stat_fields(pid)
    if fields is None:
        return None
    model_file = Path(argv[_MODEL_FILE])
    return Stub(pid=pid, model=model_file.parent.parent.name, instance=argv[_INSTANCE], region=argv[_REGION],
                start_ticks=int(fields[19]))  # fmt: skip


def server_stubs(server_pid: int) -> list[Stub]:
    """The living stub processes whose parent is ``server_pid`` (zombies, i.e. dead but not reaped, excluded)."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = _stat_fields(pid)
        if fields is None or fields[0] in ("Z", "X") or int(fields[1]) != server_pid:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        stub = _stub(pid, argv)
        if stub is not None:
            found.append(stub)
    return found


def group_members(pgid: int) -> list[int]:
    """The living processes of process group ``pgid`` (a server's group: the server and its stubs)."""
    members = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def is_alive(stub: Stub) -> bool:
    """True while ``stub`` runs (not dead, not a zombie, and its pid not reused by another process)."""
    fields = _stat_fields(stub.pid)
    return fields is not None and fields[0] not in ("Z", "X") and int(fields[19]) == stub.start_ticks


def remove_regions(prefix: str) -> list[str]:
    """Unlink every ``/dev/shm`` region whose name starts with ``prefix``; returns the names removed.

    Call it only when no process of that server can use them any more (the names go; a mapping that a living
    process still holds stays valid until it unmaps it)."""
    removed = []
    if not prefix:
        raise ValueError("an empty prefix would match every region")
    with contextlib.suppress(FileNotFoundError):
        for path in SHM_DIR.iterdir():
            if path.name.startswith(prefix):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path.name)
    return removed


def remove_region(name: str) -> bool:
    """Unlink one region by name; False when it was already gone."""
    try:
        os.unlink(SHM_DIR / name)
    except FileNotFoundError:
        return False
    return True
