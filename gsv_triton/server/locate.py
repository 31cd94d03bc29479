"""Find a runnable ``tritonserver`` and the environment it needs.

Two installs are supported:

* NVIDIA's Triton container (GPU hosts): ``tritonserver`` on PATH or under ``/opt/tritonserver``;
  it carries its own backends (onnxruntime, tensorrt, python) and needs nothing from us.
* The binary shipped inside the ``nvidia-pytriton`` wheel (CPU hosts). It needs the wheel's
  vendored libraries on LD_LIBRARY_PATH and a backend directory whose ``python/`` folder holds the
  Python-backend stub built for *this* Python version. The wheel keeps the stubs apart, so we
  assemble that folder from symlinks in a per-user cache instead of writing into site-packages.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gsv_triton.errors import UserError
from gsv_triton.settings import Settings

# Explicit override: path of a tritonserver binary (its backends are looked up next to it).
BINARY_ENV_VAR = "GSV_TRITONSERVER"
CONTAINER_ROOT = Path("/opt/tritonserver")
STUB_NAME = "triton_python_backend_stub"
CACHE_SUBDIR = "gsv-triton"


@dataclass(frozen=True)
class TritonInstall:
    """A tritonserver binary plus what it needs to run."""

    binary: Path
    # None: let the binary use its built-in default (/opt/tritonserver/backends in the container).
    backend_dir: Path | None
    kind: str  # "pytriton", "container" or "env" (GSV_TRITONSERVER)
    # Directories prepended to LD_LIBRARY_PATH for the server and, through inheritance, the stubs.
    library_path: tuple[Path, ...] = field(default_factory=tuple)

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The process environment for tritonserver: ``base`` (default os.environ) plus our paths."""
        env = dict(os.environ if base is None else base)
        parts = [str(p) for p in self.library_path]
        if env.get("LD_LIBRARY_PATH"):
            parts.append(env["LD_LIBRARY_PATH"])
        if parts:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(parts)
        return env


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gsv-triton`` (``~/.cache/gsv-triton`` when unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / CACHE_SUBDIR


def locate_tritonserver(cache_dir: Path | None = None) -> TritonInstall:
    """The tritonserver to run: $GSV_TRITONSERVER, else NVIDIA's container, else the pytriton wheel.

    The container wins over the wheel because it has the GPU backends; ``cache_dir`` is where the
    wheel's backend directory is assembled (default :func:`default_cache_dir`).
    """
    override = Settings().tritonserver
    if override:
        binary = Path(override)
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise UserError(f"{BINARY_ENV_VAR}={override} is not an executable file")
        return TritonInstall(binary=binary, backend_dir=_backends_next_to(binary), kind="env")

    on_path = shutil.which("tritonserver")
    if on_path:
        binary = Path(on_path)
        return TritonInstall(binary=binary, backend_dir=_backends_next_to(binary), kind="container")
    container_binary = CONTAINER_ROOT / "bin" / "tritonserver"
    if container_binary.is_file():
        return TritonInstall(binary=container_binary, backend_dir=None, kind="container")

    wheel_root = _pytriton_root()
    if wheel_root is None:
        raise UserError(
            "no tritonserver found: install the serve extra (pip install 'gsv-triton[serve]'), "
            f"run inside NVIDIA's Triton container, or set {BINARY_ENV_VAR}"
        )
    return pytriton_install(wheel_root, cache_dir or default_cache_dir())


def pytriton_install(wheel_root: Path, cache_dir: Path) -> TritonInstall:
    """The install for the wheel whose ``pytriton/tritonserver`` folder is ``wheel_root``."""
    binary = wheel_root / "bin" / "tritonserver"
    if not binary.is_file():
        raise UserError(f"the nvidia-pytriton wheel has no tritonserver binary at {binary}")
    # auditwheel puts the vendored libraries in <site-packages>/nvidia_pytriton.libs.
    vendored = wheel_root.parent.parent / "nvidia_pytriton.libs"
    libpython = libpython_dir()
    library_path = tuple(p for p in (vendored, libpython) if p and p.is_dir())
    return TritonInstall(
        binary=binary,
        backend_dir=pytriton_backend_dir(wheel_root, cache_dir),
        kind="pytriton",
        library_path=library_path,
    )


# Folders the dynamic linker searches without LD_LIBRARY_PATH (before the multiarch ones are added).
SYSTEM_LIBRARY_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64")


def libpython_dir(config: Mapping[str, Any] | None = None) -> Path | None:
    """The folder to put on the stub's LD_LIBRARY_PATH for this interpreter's libpython, or None.

    The stub links libpython3.X.so; a Python outside the system folders (pyenv, a venv's base in /opt) must
    lend its LIBDIR, else the stub loads the distribution's libpython, maybe another patch release than the
    stdlib it then imports. A system LIBDIR (/usr/lib/x86_64-linux-gnu) is found anyway, and first on
    LD_LIBRARY_PATH it would shadow the CUDA libraries torch brings (it outranks their RUNPATH), so it is left
    out, as is a LIBDIR without the shared libpython (a static build). ``config``: sysconfig's variables.
    """
    config = sysconfig.get_config_vars() if config is None else config
    libdir, soname = config.get("LIBDIR"), config.get("INSTSONAME")
    if not libdir or not soname or not (Path(libdir) / str(soname)).is_file():
        return None
    multiarch = config.get("MULTIARCH")
    system = {*SYSTEM_LIBRARY_DIRS, *(f"{d}/{multiarch}" for d in SYSTEM_LIBRARY_DIRS if multiarch)}
    resolved = os.path.realpath(libdir)
    if resolved in {os.path.realpath(d) for d in system}:
        return None
    return Path(libdir)


def pytriton_backend_dir(wheel_root: Path, cache_dir: Path) -> Path:
    """Assemble ``<cache>/backends-<key>/python/`` from symlinks and return ``<cache>/backends-<key>``.

    ``key`` hashes the wheel location and Python version, so several venvs can share one cache.
    Links are replaced atomically, so concurrent launches never see a half-built folder.
    """
    py_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = wheel_root / "python_backend_stubs" / py_version / STUB_NAME
    if not stub.is_file():
        raise UserError(f"the nvidia-pytriton wheel has no Python-backend stub for Python {py_version}")
    source = wheel_root / "backends" / "python"
    targets = {p.name: p for p in sorted(source.iterdir()) if p.is_file()}
    if "libtriton_python.so" not in targets:
        raise UserError(f"the nvidia-pytriton wheel has no Python backend at {source}")
    targets[STUB_NAME] = stub

    key = hashlib.sha256(f"{wheel_root.resolve()}|{py_version}".encode()).hexdigest()[:12]
    backends = cache_dir / f"backends-{key}"
    python_dir = backends / "python"
    try:
        python_dir.mkdir(parents=True, exist_ok=True)
        for name, target in targets.items():
            _symlink(python_dir / name, target.resolve())
    except OSError as exc:
        raise UserError(f"cannot build the Triton backend directory in {backends}: {exc}") from exc
    return backends


def _symlink(link: Path, target: Path) -> None:
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def _backends_next_to(binary: Path) -> Path | None:
    candidate = binary.resolve().parent.parent / "backends"
    return candidate if candidate.is_dir() else None


def _pytriton_root() -> Path | None:
    # find_spec does not execute pytriton/__init__.py (which imports a lot).
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    return root if root.is_dir() else None
