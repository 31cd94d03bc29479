"""The tensor contract (gsv_triton.contract) against every Triton config: the templates in model_repository/
and the configs an export installs (the extra models included). A new input added on one side only fails here."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from gsv_export.extra_models import install_extra_models
from gsv_export.triton_repository import PRO_MODELS
from gsv_triton.contract import CONTRACTS, NUMPY_DTYPES, ModelContract, TensorSpec

TEMPLATES = Path(__file__).resolve().parents[1] / "model_repository"
PLACEHOLDER = re.compile(r"@[A-Z_]+@")
WIRE_TO_CONFIG = {"BYTES": "TYPE_STRING", "BOOL": "TYPE_BOOL", "INT32": "TYPE_INT32", "INT64": "TYPE_INT64",
                  "FP32": "TYPE_FP32"}  # fmt: skip


def parse_config(path: Path) -> model_config_pb2.ModelConfig:
    """A config.pbtxt parsed by Triton's own protobuf schema (template placeholders filled with a number)."""
    text = PLACEHOLDER.sub(lambda m: "" if m.group(0) == "@EXECUTION_ENV@" else "1", path.read_text("utf-8"))
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def tensor_rows(specs: tuple[TensorSpec, ...]) -> dict[str, tuple[str, tuple[int, ...], bool]]:
    return {t.name: (WIRE_TO_CONFIG[t.datatype], t.dims, t.optional) for t in specs}


def config_rows(tensors) -> dict[str, tuple[str, tuple[int, ...], bool]]:
    return {
        t.name: (model_config_pb2.DataType.Name(t.data_type), tuple(t.dims), bool(getattr(t, "optional", False)))
        for t in tensors
    }


def assert_matches(contract: ModelContract, config: model_config_pb2.ModelConfig) -> None:
    assert tensor_rows(contract.inputs) == config_rows(config.input), f"{contract.name} inputs"
    assert tensor_rows(contract.outputs) == config_rows(config.output), f"{contract.name} outputs"
    assert contract.max_batch_size == config.max_batch_size, f"{contract.name} max_batch_size"
    assert contract.decoupled == config.model_transaction_policy.decoupled, f"{contract.name} decoupled"


@pytest.mark.parametrize("model", sorted(p.parent.name for p in TEMPLATES.glob("*/config.pbtxt")))
def test_every_template_matches_its_contract(model: str) -> None:
    assert model in CONTRACTS, f"model_repository/{model} has no entry in gsv_triton.contract"
    assert_matches(CONTRACTS[model], parse_config(TEMPLATES / model / "config.pbtxt"))


def test_every_contract_has_a_template() -> None:
    assert {p.parent.name for p in TEMPLATES.glob("*/config.pbtxt")} == set(CONTRACTS)


def test_installed_configs_match_the_contract(tiny_model_repository: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(tiny_model_repository, repo)
    install_extra_models(repo)
    installed = sorted(p.parent.name for p in repo.glob("*/config.pbtxt"))
    assert set(installed) == set(CONTRACTS) - set(PRO_MODELS)  # a v2 repository: no speaker_encoder
    for model in installed:
        config = parse_config(repo / model / "config.pbtxt")
        assert config.name in ("", model)
        assert_matches(CONTRACTS[model], config)


def test_a_drifted_config_is_caught() -> None:
    """The comparison can fail: a datatype changed in the config shows as a mismatch."""
    config = parse_config(TEMPLATES / "voice_clone" / "config.pbtxt")
    config.input[0].data_type = model_config_pb2.TYPE_FP32
    with pytest.raises(AssertionError, match="voice_clone inputs"):
        assert_matches(CONTRACTS["voice_clone"], config)


def test_tensor_arrays_have_the_wire_dtype() -> None:
    spec = CONTRACTS["voice_clone"]
    assert spec.input("text").array("你好").tolist() == ["你好".encode()]
    assert spec.input("reference_audio").array(b"RIFF").dtype == NUMPY_DTYPES["BYTES"]
    assert spec.input("top_k").array(5).dtype.name == "int32"
    assert spec.input("speed").array(1.5).tolist() == [1.5]
    assert spec.input("prompt_bert").array([[0.0]]).shape == (1, 1)
