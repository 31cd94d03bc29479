"""Install the Triton model configs and entry points next to the exported ONNX files.

The templates live in the checkout's ``model_repository/<model>/`` (``config.pbtxt`` + ``1/model.py``) and install as
the package data of ``gsv_export.model_templates`` (:func:`templates_dir`), so export works from a plain
``pip install`` as well as from an editable one. Two placeholders are filled here, so a user never edits a
config by hand:

* ``@EXECUTION_ENV@``: the ``EXECUTION_ENV_PATH`` parameter naming the current venv (Triton's Python stub
  ignores PYTHONPATH, so this is how it finds numpy, onnxruntime and gsv_triton);
* ``@INTRA_OP_THREADS@``: onnxruntime threads of the heavy networks, this host's core count capped at
  ``MAX_INTRA_OP_THREADS``.

``target="gpu"`` writes configs for NVIDIA's Triton container instead: the plain networks use Triton's own
onnxruntime backend (CUDA) or, where ``export --target gpu`` built ``model.plan``, the TensorRT backend; ``t2s``
stays a Python model with onnxruntime's CUDA provider (KIND_GPU instances) and ``voice_clone`` stays on the CPU.
That path is not exercised on this project's CPU machines.

``target="gpu-torch"`` (written by :mod:`gsv_export.torch_target`) keeps the Python-backend configs and adds the
torch runtime parameters (``runtime: torch``, ``device: auto``, ``dtype``): our torch modules on CUDA in float16
where torch sees a GPU, else on the CPU in float32. Instances stay KIND_CPU (the ``device`` parameter, not the
instance kind, places the work), so the same repository loads on a CPU host. The GPT runs in ``t2s_engine``, a
decoupled model whose one instance decodes the rows of all concurrent requests together; ``t2s`` keeps its contract
and only forwards (``forward_to``), with many light instances. On a GPU host the orchestrators get
``TORCH_ORCHESTRATOR_INSTANCES`` so they do not cap the requests in flight.
"""

from __future__ import annotations

import os
import re
import shutil
from importlib import resources
from pathlib import Path

from gsv_export.python_env import python_env_parameter
from gsv_triton.errors import UserError
from gsv_triton.manifest import MANIFEST_FILE, Manifest
from gsv_triton.model_sets import DEFAULT_SET, SET_NETWORKS, network_model

TEMPLATES_PACKAGE = "gsv_export.model_templates"  # pyproject maps it to model_repository/


def templates_dir() -> Path:
    """The folder of the installed model templates (found through the package, never through a checkout)."""
    folder = resources.files(TEMPLATES_PACKAGE)
    # pip unpacks wheels into real folders; the templates are copied with shutil, which needs a file-system path.
    if not isinstance(folder, Path):
        raise UserError(f"the model templates of {TEMPLATES_PACKAGE} are not in a folder ({folder})")
    return folder


TEMPLATES = templates_dir()
MODELS = (
    "bert", "ssl", "vq_encode", "ref_encoder", "sovits_decode", "t2s", "voice_clone",
    "voice_encode", "voice_convert", "voice_clone_stream",
)  # fmt: skip
# Models only v2Pro/v2ProPlus repositories have (their manifest says which version a repository is).
PRO_MODELS = ("speaker_encoder",)
# Networks that are a single ONNX graph: Triton's onnxruntime/TensorRT backends can serve them on GPU hosts.
PLAIN_NETWORKS = ("bert", "ssl", "vq_encode", "ref_encoder", "sovits_decode", "speaker_encoder")
MODEL_VERSION = "1"
ENGINE_FILE = "model.plan"  # written by gsv_export.tensorrt_build
ENV_PLACEHOLDER = "@EXECUTION_ENV@"
THREADS_PLACEHOLDER = "@INTRA_OP_THREADS@"
# More threads than this buys little for these graph sizes and starves the other instances.
MAX_INTRA_OP_THREADS = 4
TORCH_TARGET = "gpu-torch"  # written by gsv_export.torch_target
TARGETS = ("cpu", "gpu", TORCH_TARGET)
# Models whose networks the torch runtime runs: the plain networks (voice_clone orchestrates on the CPU in every
# target; the GPT runs in t2s_engine, written from t2s's template, and t2s forwards to it).
TORCH_MODELS = PLAIN_NETWORKS
T2S_ENGINE = "t2s_engine"
T2S_ENGINE_ENTRY = (
    '"""Triton entry point of `t2s_engine`: the GPT of all concurrent t2s requests in shared steps (code in\n'
    'gsv_triton.backend.models.t2s_engine_model)."""\n\n'
    "from gsv_triton.backend.models.t2s_engine_model import TritonPythonModel\n\n"
    '__all__ = ["TritonPythonModel"]\n'
)
# vq_encode picks the nearest codebook row: kept in float32 so half-precision rounding cannot flip a code
# (it runs once per new reference and costs little).
TORCH_DTYPES = {"vq_encode": "float32"}
# Forwarding t2s instances (numpy only, each waits on one request): as many as requests may be in flight.
TORCH_T2S_FORWARDERS = {"gpu": 16, "cpu": 4}
# Orchestrator instances where torch sees a GPU (each voice_clone instance serves one request at a time, mostly
# waiting on BLS calls); CPU hosts keep the templates' counts.
TORCH_ORCHESTRATOR_INSTANCES = {"voice_clone": 16, "voice_clone_stream": 4}
# Template lines that name ONNX files, which a gpu-torch repository does not have.
_ONNX_FILE_LINE = re.compile(r'^\s*parameters: \{ key: "(onnx_file|prefill_file|step_file)"')
# Lines of a CPU template that only the Python backend understands.
_PYTHON_ONLY = re.compile(r'^\s*(parameters: \{ key: "(onnx_file|intra_op_threads|batch_pad_axis)"|@EXECUTION_ENV@)')


def default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, MAX_INTRA_OP_THREADS))


def fill_template(text: str, env_parameter: str, threads: int) -> str:
    """The config text with both placeholders replaced."""
    return text.replace(ENV_PLACEHOLDER, env_parameter.rstrip("\n")).replace(THREADS_PLACEHOLDER, str(threads))


def gpu_network_config(cpu_config: str, onnx_file: str, has_engine: bool) -> str:
    """The (unfilled) CPU template of a plain network rewritten for NVIDIA's container (onnxruntime-CUDA or TensorRT backend).

    Tensor names, types and dims stay the same, so ``voice_clone``'s BLS calls need no change. Ragged batching
    is dropped: those backends take one dense tensor, so only equal-length requests are batched there.
    """
    # The template's comments describe the CPU choices (python backend, ragged padding): replaced by one line.
    lines = [line for line in cpu_config.splitlines() if not (_PYTHON_ONLY.match(line) or line.startswith("#"))]
    header = (
        f"# GPU config written by gsv_export.triton_repository from model_repository/{Path(onnx_file).stem}/"
        "config.pbtxt (same tensors; see its comments).\n"
    )
    text = header + "\n".join(lines) + "\n"
    if has_engine:
        backend = f'platform: "tensorrt_plan"\ndefault_model_filename: "{ENGINE_FILE}"'
    else:
        # KIND_GPU instances of the onnxruntime backend run on its CUDA execution provider.
        backend = f'backend: "onnxruntime"\ndefault_model_filename: "{onnx_file}"'
    text = text.replace('backend: "python"', backend)
    text = text.replace(", allow_ragged_batch: true", "")
    return text.replace("kind: KIND_CPU", "kind: KIND_GPU")


def torch_runtime_config(config: str, model: str) -> str:
    """A filled CPU config switched to the torch runtime (parameters added, ONNX file names dropped)."""
    lines = [line for line in config.splitlines() if not _ONNX_FILE_LINE.match(line)]
    dtype = TORCH_DTYPES.get(model, "auto")
    lines += [
        "# torch runtime (gsv_export.torch_target): our torch modules; device auto = cuda when torch sees a GPU",
        'parameters: { key: "runtime", value: { string_value: "torch" } }',
        'parameters: { key: "device", value: { string_value: "auto" } }',
        f'parameters: {{ key: "dtype", value: {{ string_value: "{dtype}" }} }}',
    ]
    return "\n".join(lines) + "\n"


def t2s_engine_config(t2s_config: str) -> str:
    """``t2s_engine``'s config from t2s's filled template: same tensors, torch runtime, decoupled, one instance."""
    text = torch_runtime_config(t2s_config, "t2s").replace(
        "max_batch_size: 0", "max_batch_size: 0\nmodel_transaction_policy { decoupled: true }"
    )
    text += 'parameters: { key: "weights_from", value: { string_value: "t2s" } }\n'
    return set_instance_count(text, 1)


def t2s_forward_config(t2s_config: str, instances: int) -> str:
    """``t2s``'s filled template as a forwarder to ``t2s_engine`` (no network, ``instances`` light instances)."""
    lines = [line for line in t2s_config.splitlines() if not _ONNX_FILE_LINE.match(line)]
    lines += [
        f"# gpu-torch: every request goes to {T2S_ENGINE}, which decodes concurrent requests together",
        f'parameters: {{ key: "forward_to", value: {{ string_value: "{T2S_ENGINE}" }} }}',
    ]
    return set_instance_count("\n".join(lines) + "\n", instances)


def set_instance_count(config: str, count: int) -> str:
    """The config with its (single) KIND_CPU instance group resized to ``count``."""
    return re.sub(r"kind: KIND_CPU, count: \d+", f"kind: KIND_CPU, count: {count}", config)


def torch_sees_gpu() -> bool:
    """Whether the exporting host's torch sees a CUDA GPU (the gpu-torch instance counts follow it)."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _env_parameter(target: str) -> str:
    try:
        return python_env_parameter()
    except UserError:
        if target in ("cpu", TORCH_TARGET):
            raise
        # NVIDIA's container: the stub runs the container's Python, where gsv-triton must be pip-installed.
        return "# no EXECUTION_ENV_PATH: the Python stub uses the container's own Python environment"


def repository_models(repo: Path) -> dict[str, str]:
    """The Triton models an exported repository has, each with its template: :data:`MODELS`, :data:`PRO_MODELS`
    when a model set of its manifest is v2Pro/v2ProPlus, and every named set's own networks
    (:mod:`gsv_triton.model_sets`)."""
    sets = Manifest.read_sets(repo) if (Path(repo) / MANIFEST_FILE).is_file() else {}
    has_default = not sets or DEFAULT_SET in sets  # a repository started with `export --name` has no default set
    models = {m: m for m in MODELS if has_default or m not in SET_NETWORKS}
    if any(m.needs_speaker_vector for m in sets.values()):
        models.update({m: m for m in PRO_MODELS})
    for model_set in sets:
        if model_set != DEFAULT_SET:
            models.update({network_model(n, model_set): n for n in SET_NETWORKS})
    return models


def install_triton_models(repo: Path, target: str = "cpu", threads: int | None = None) -> None:
    """Write ``config.pbtxt`` and ``1/model.py`` of every model of the exported repository ``repo``."""
    if target not in TARGETS:
        raise UserError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    repo = Path(repo)
    if not repo.is_dir():
        raise UserError(f"model repository {repo} does not exist")
    models = repository_models(repo)
    missing = [m for m in set(models.values()) if not (TEMPLATES / m / "config.pbtxt").is_file()]
    if missing:
        raise UserError(f"the model templates in {TEMPLATES} lack {', '.join(missing)}")
    env = _env_parameter(target)
    threads = threads or default_threads()
    gpu = target == TORCH_TARGET and torch_sees_gpu()
    for dest_name, model in models.items():
        source, dest = TEMPLATES / model, repo / dest_name
        (dest / MODEL_VERSION).mkdir(parents=True, exist_ok=True)
        config = (source / "config.pbtxt").read_text("utf-8")
        if target == "gpu" and model in PLAIN_NETWORKS:
            has_engine = (dest / MODEL_VERSION / ENGINE_FILE).is_file()
            config = gpu_network_config(config, f"{model}.onnx", has_engine)
        else:
            config = fill_template(config, env, threads)
            if target == TORCH_TARGET and model in TORCH_MODELS:
                config = torch_runtime_config(config, model)
            elif target == TORCH_TARGET and model == "t2s":
                _write_t2s_engine(repo, t2s_engine_config(config))
                config = t2s_forward_config(config, TORCH_T2S_FORWARDERS["gpu" if gpu else "cpu"])
            elif gpu and model in TORCH_ORCHESTRATOR_INSTANCES:
                config = set_instance_count(config, TORCH_ORCHESTRATOR_INSTANCES[model])
            if target == "gpu" and model == "t2s":
                config = config.replace("kind: KIND_CPU", "kind: KIND_GPU")
            shutil.copyfile(source / MODEL_VERSION / "model.py", dest / MODEL_VERSION / "model.py")
        (dest / "config.pbtxt").write_text(config, "utf-8")


def _write_t2s_engine(repo: Path, config: str) -> None:
    folder = repo / T2S_ENGINE
    (folder / MODEL_VERSION).mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(config, "utf-8")
    (folder / MODEL_VERSION / "model.py").write_text(T2S_ENGINE_ENTRY, "utf-8")
