"""The tritonserver launcher against a real tritonserver (the pytriton wheel's binary on CPU hosts).

The models are throwaway Python-backend models written by the tests: the thing under test is the
launcher (locating the binary, the stub's venv, readiness, draining, errors), not the models.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from gsv_export.python_env import python_env_parameter
from gsv_triton.errors import UserError
from gsv_triton.server import (
    TritonServer,
    TritonServerError,
    check_model_repository,
    free_port,
    locate,
    locate_tritonserver,
    serve_main,
)
from gsv_triton.server.locate import STUB_NAME, _pytriton_root, libpython_dir, pytriton_backend_dir

READY_TIMEOUT_S = 60.0
SLOW_MODEL_SLEEP_S = 1.0
# SIGTERM with one slow request in flight: the request's remaining second plus Triton's shutdown.
DRAIN_BUDGET_S = 8.0

ECHO_MODEL = '''
import json, os, sys
import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        path = os.path.join(args["model_repository"], args["model_version"], "add_one.onnx")
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.info = json.dumps({"version": sys.version, "prefix": sys.prefix,
                                "numpy": np.__version__, "numpy_file": np.__file__,
                                "onnxruntime": ort.__version__, "onnxruntime_file": ort.__file__})
        pb_utils.Logger.log_info("echo stub environment: " + self.info)

    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "X").as_numpy()
            y = self.sess.run(None, {"x": x})[0]
            info = np.array([self.info.encode()], dtype=np.object_)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", y), pb_utils.Tensor("INFO", info)]))
        return out
'''

SLOW_MODEL = f'''
import os, time
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        self.marker = os.path.join(args["model_repository"], "started")

    def execute(self, requests):
        open(self.marker, "w").close()  # tells the test the request is in flight
        time.sleep({SLOW_MODEL_SLEEP_S})
        return [pb_utils.InferenceResponse(
            [pb_utils.Tensor("Y", pb_utils.get_input_tensor_by_name(r, "X").as_numpy() * 2)])
            for r in requests]
'''

BROKEN_MODEL = '''
class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("deliberately broken model for the launcher test")

    def execute(self, requests):
        return []
'''


def _config(name: str, outputs: list[tuple[str, str]]) -> str:
    out = ", ".join(f'{{ name: "{n}" data_type: {t} dims: [ -1 ] }}' for n, t in outputs)
    return (
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: 0\n'
        'input [ { name: "X" data_type: TYPE_FP32 dims: [ -1 ] } ]\n'
        f"output [ {out} ]\n"
        "instance_group [ { kind: KIND_CPU count: 1 } ]\n" + python_env_parameter()
    )


def _write_model(repo: Path, name: str, source: str, outputs: list[tuple[str, str]]) -> Path:
    version = repo / name / "1"
    version.mkdir(parents=True)
    (version / "model.py").write_text(textwrap.dedent(source))
    (repo / name / "config.pbtxt").write_text(_config(name, outputs))
    return version


def _add_one_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "add_one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
        initializer=[one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by any onnxruntime we support
    onnx.save(model, str(path))


def _good_repo(root: Path) -> Path:
    repo = root / "repo"
    version = _write_model(repo, "echo", ECHO_MODEL, [("Y", "TYPE_FP32"), ("INFO", "TYPE_STRING")])
    _add_one_onnx(version / "add_one.onnx")
    _write_model(repo, "slow", SLOW_MODEL, [("Y", "TYPE_FP32")])
    return repo


def _ports() -> dict[str, int]:
    return {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}


def _http_infer(endpoint: str, model: str, x: np.ndarray) -> dict[str, np.ndarray]:
    import tritonclient.http as httpclient

    with httpclient.InferenceServerClient(url=endpoint) as client:
        inp = httpclient.InferInput("X", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        result = client.infer(model, [inp])
        return {o["name"]: result.as_numpy(o["name"]) for o in result.get_response()["outputs"]}


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory):
    try:
        return locate_tritonserver(cache_dir=tmp_path_factory.mktemp("cache"))
    except UserError as exc:
        pytest.skip(f"no tritonserver on this host: {exc}")


@pytest.fixture(scope="module")
def server(install, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("triton")
    srv = TritonServer(install).start(_good_repo(root), log_path=root / "triton.log", **_ports())
    with srv:
        srv.wait_ready(READY_TIMEOUT_S)
        yield srv
    assert srv.returncode == 0, srv.log_tail()


# --- fast checks, no server ---------------------------------------------------------------


def test_python_env_parameter_names_this_venv():
    fragment = python_env_parameter()
    assert 'key: "EXECUTION_ENV_PATH"' in fragment
    assert f'string_value: "{sys.prefix}"' in fragment
    assert 'string_value: "$$TRITON_MODEL_DIRECTORY/../../.venv"' in python_env_parameter(
        "$$TRITON_MODEL_DIRECTORY/../../.venv"
    )


def test_python_env_parameter_refuses_a_non_venv(tmp_path: Path):
    with pytest.raises(UserError, match="not a virtual environment"):
        python_env_parameter(tmp_path)


def test_backend_dir_is_built_outside_site_packages(tmp_path: Path):
    root = _pytriton_root()
    if root is None:
        pytest.skip("nvidia-pytriton is not installed")
    wheel_python = root / "backends" / "python"
    before = sorted(p.name for p in wheel_python.iterdir())
    backends = pytriton_backend_dir(root, tmp_path)
    assert pytriton_backend_dir(root, tmp_path) == backends  # idempotent
    python_dir = backends / "python"
    assert backends.parent == tmp_path
    for name in ("libtriton_python.so", "triton_python_backend_utils.py", STUB_NAME):
        assert (python_dir / name).is_file(), name
    stub_target = (python_dir / STUB_NAME).resolve()
    assert stub_target.parent.name == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert sorted(p.name for p in wheel_python.iterdir()) == before  # the wheel is untouched


@pytest.mark.parametrize("kind", ["missing", "file", "empty"])
def test_bad_repository_is_a_user_error(tmp_path: Path, kind: str):
    repo = tmp_path / "repo"
    if kind == "file":
        repo.write_text("")
    elif kind == "empty":
        repo.mkdir()
        (repo / ".hidden").mkdir()
    with pytest.raises(UserError, match=str(repo)) as info:
        check_model_repository(repo)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError):
        serve_main(repo, **_ports())


def test_port_already_in_use_is_refused(install, tmp_path: Path):
    repo = _good_repo(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = _ports() | {"grpc_port": busy.getsockname()[1]}
        srv = TritonServer(install)
        with pytest.raises(UserError, match=f"gRPC port {ports['grpc_port']} is already in use"):
            srv.start(repo, **ports)
        assert not srv.is_running


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# --- real tritonserver ----------------------------------------------------------------------


@pytest.mark.slow
def test_http_infer(server: TritonServer):
    x = np.arange(5, dtype=np.float32)
    outputs = _http_infer(server.http_endpoint, "echo", x)
    np.testing.assert_array_equal(outputs["Y"], x + 1)


@pytest.mark.slow
def test_grpc_infer(server: TritonServer):
    import tritonclient.grpc as grpcclient

    x = np.linspace(-1, 1, 7, dtype=np.float32)
    with grpcclient.InferenceServerClient(url=server.grpc_endpoint) as client:
        assert client.is_server_ready()
        inp = grpcclient.InferInput("X", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        result = client.infer("echo", [inp])
    np.testing.assert_array_equal(result.as_numpy("Y"), x + 1)


@pytest.mark.slow
def test_stub_runs_in_our_venv(server: TritonServer):
    import onnxruntime

    outputs = _http_infer(server.http_endpoint, "echo", np.zeros(1, dtype=np.float32))
    info = json.loads(outputs["INFO"][0])
    assert info["prefix"] == sys.prefix
    assert info["version"] == sys.version  # same interpreter build, libpython from LIBDIR
    assert info["numpy"] == np.__version__ and info["numpy"].startswith("1.")
    assert info["numpy_file"].startswith(sys.prefix)
    assert info["onnxruntime"] == onnxruntime.__version__
    assert info["onnxruntime_file"].startswith(sys.prefix)
    assert server.log_path is not None
    assert "echo stub environment" in server.log_path.read_text()


@pytest.mark.slow
def test_sigterm_drains_a_request_in_flight(install, tmp_path: Path):
    repo = _good_repo(tmp_path)
    srv = TritonServer(install).start(repo, log_path=tmp_path / "triton.log", **_ports())
    with srv:
        srv.wait_ready(READY_TIMEOUT_S)
        x = np.array([1.5, -2.0], dtype=np.float32)
        result: dict[str, object] = {}

        def call() -> None:
            try:
                result["Y"] = _http_infer(srv.http_endpoint, "slow", x)["Y"]
            except Exception as exc:  # reported by the assertion below
                result["error"] = exc

        caller = threading.Thread(target=call)
        caller.start()
        _wait_for(repo / "slow" / "started", SLOW_MODEL_SLEEP_S * 10)
        t0 = time.monotonic()
        code = srv.stop()
        stop_s = time.monotonic() - t0
        caller.join(DRAIN_BUDGET_S)
    assert "error" not in result, result.get("error")
    np.testing.assert_array_equal(result["Y"], x * 2)
    assert code == 0, srv.log_tail()
    assert stop_s < DRAIN_BUDGET_S


@pytest.mark.slow
@pytest.mark.parametrize("log_to", ["stdout", "file"])
def test_broken_model_fails_with_the_log_tail(
    install, tmp_path: Path, capfd: pytest.CaptureFixture, log_to: str
):
    repo = tmp_path / "repo"
    _write_model(repo, "broken", BROKEN_MODEL, [("Y", "TYPE_FP32")])
    log_path = tmp_path / "triton.log" if log_to == "file" else None
    srv = TritonServer(install).start(repo, log_path=log_path, **_ports())
    with srv, pytest.raises(TritonServerError) as info:
        srv.wait_ready(READY_TIMEOUT_S)
    # One line that names the model and the cause, then the log tail for the details.
    assert "\n" not in info.value.summary
    assert "exited with code 1" in info.value.summary
    assert "failed to load 'broken'" in info.value.summary
    assert "deliberately broken model" in info.value.summary
    assert "CudaDriverHelper" not in info.value.summary  # CPU-host noise is left out
    assert "deliberately broken model" in info.value.log_tail
    assert str(info.value).startswith(info.value.summary)
    assert srv.returncode == 1
    if log_to == "stdout":
        assert "deliberately broken model" in capfd.readouterr().out  # the log passed through


@pytest.mark.slow
def test_serve_main_passes_logs_and_stops_on_ctrl_c(tmp_path: Path):
    """The foreground command: ready line, log on stdout, Ctrl-C drains a request and returns 0."""
    repo = _good_repo(tmp_path)
    ports = _ports()
    code = (
        "import sys; from pathlib import Path; from gsv_triton.server import serve_main; "
        f"sys.exit(serve_main(Path({str(repo)!r}), {ports['http_port']}, {ports['grpc_port']}, "
        f"{ports['metrics_port']}, address='127.0.0.1'))"
    )
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("gsv-triton serve: ready"):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(READY_TIMEOUT_S), "".join(lines)
        endpoint = f"127.0.0.1:{ports['http_port']}"
        x = np.array([3.0], dtype=np.float32)
        result: dict[str, np.ndarray] = {}
        caller = threading.Thread(target=lambda: result.update(_http_infer(endpoint, "slow", x)))
        caller.start()
        _wait_for(repo / "slow" / "started", SLOW_MODEL_SLEEP_S * 10)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(DRAIN_BUDGET_S) == 0, "".join(lines)
        caller.join(DRAIN_BUDGET_S)
        reader.join(DRAIN_BUDGET_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines)
    np.testing.assert_array_equal(result["Y"], x * 2)
    assert "Started HTTPService" in out  # Triton's own log passed through
    assert "gsv-triton serve: stopped" in out


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def _libdir(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True)
    (folder / "libpython3.12.so.1.0").write_bytes(b"")
    return folder


def _a_file_in(folder: str) -> str:
    """The name of some file in a system folder (stands for a distribution libpython there)."""
    names = sorted(p.name for p in Path(folder).iterdir() if p.is_file()) if Path(folder).is_dir() else []
    if not names:
        pytest.skip(f"{folder} holds no file on this host")
    return names[0]


def test_libpython_dir_only_for_a_python_outside_the_system_folders(tmp_path: Path):
    """LIBDIR goes on the stub's LD_LIBRARY_PATH only when it holds the shared libpython and the linker would
    not find it anyway: a system LIBDIR first on the path would shadow the CUDA libraries torch brings."""
    pyenv = _libdir(tmp_path, "pyenv/lib")
    config = {"LIBDIR": str(pyenv), "INSTSONAME": "libpython3.12.so.1.0", "MULTIARCH": "x86_64-linux-gnu"}
    assert libpython_dir(config) == pyenv
    assert libpython_dir(config | {"INSTSONAME": "libpython3.12.a"}) is None  # a static build: nothing to find
    assert libpython_dir(config | {"LIBDIR": None}) is None
    system = "/usr/lib/x86_64-linux-gnu"
    assert libpython_dir(config | {"LIBDIR": system, "INSTSONAME": _a_file_in(system)}) is None
    assert libpython_dir(config | {"LIBDIR": "/usr/lib", "INSTSONAME": _a_file_in("/usr/lib")}) is None


def test_pytriton_install_leaves_a_system_libdir_off_ld_library_path(tmp_path: Path, monkeypatch):
    wheel_root = tmp_path / "site" / "pytriton" / "tritonserver"
    (wheel_root / "bin").mkdir(parents=True)
    (wheel_root / "bin" / "tritonserver").write_bytes(b"")
    vendored = tmp_path / "site" / "nvidia_pytriton.libs"
    vendored.mkdir()
    monkeypatch.setattr(locate, "pytriton_backend_dir", lambda root, cache: tmp_path / "backends")
    folder = "/usr/lib/x86_64-linux-gnu"
    system = {"LIBDIR": folder, "INSTSONAME": _a_file_in(folder), "MULTIARCH": "x86_64-linux-gnu"}
    monkeypatch.setattr(locate.sysconfig, "get_config_vars", lambda: system)
    install = locate.pytriton_install(wheel_root, tmp_path / "cache")
    assert install.library_path == (vendored,)
    assert install.environment({"LD_LIBRARY_PATH": "/cuda"})["LD_LIBRARY_PATH"] == f"{vendored}:/cuda"
    pyenv = _libdir(tmp_path, "pyenv/lib")
    own = system | {"LIBDIR": str(pyenv), "INSTSONAME": "libpython3.12.so.1.0"}
    monkeypatch.setattr(locate.sysconfig, "get_config_vars", lambda: own)
    assert locate.pytriton_install(wheel_root, tmp_path / "cache").library_path == (vendored, pyenv)
