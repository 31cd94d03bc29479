"""The extra Triton models (voice_encode, voice_convert, voice_clone_stream): installer and the gateway's answer
when a repository lacks them (fast, no tritonserver)."""

from __future__ import annotations

from gsv_export.extra_models import EXTRA_MODELS, install_extra_models, main
from gsv_triton.server import free_port


def test_a_repository_without_the_extra_models_is_a_503_with_the_fix() -> None:
    """Triton's "unknown model" for voice_encode / voice_clone_stream becomes a 503 naming the install command."""
    import asyncio

    from tritonclient.utils import InferenceServerException

    from gsv_gateway.errors import ServiceUnavailable
    from gsv_gateway.triton import TritonVoiceClone

    async def errors():
        client = TritonVoiceClone(f"127.0.0.1:{free_port()}", "voice_clone", 1.0, 1.0)
        try:
            unknown = "Request for unknown model: 'voice_encode' is not found"
            # Triton's HTTP endpoint answers the same message with 400 (INVALID_ARGUMENT): still not the client's fault.
            over_http = InferenceServerException(unknown.replace("voice_encode", "voice_convert"), "StatusCode.INVALID_ARGUMENT")
            return (client._domain_error(InferenceServerException(unknown, "StatusCode.NOT_FOUND"), "voice_encode"),
                    client._domain_error(over_http, "voice_convert"),
                    client._stream_error(unknown.replace("voice_encode", "voice_clone_stream")))  # fmt: skip
        finally:
            await client.close()

    for error in asyncio.run(errors()):
        assert isinstance(error, ServiceUnavailable) and "python -m gsv_export.extra_models" in error.message


def test_install_extra_models_writes_configs_and_entry_points(tmp_path, capsys) -> None:
    assert main([str(tmp_path)]) == 0 and "restart Triton" in capsys.readouterr().out
    for model in EXTRA_MODELS:
        config = (tmp_path / model / "config.pbtxt").read_text("utf-8")
        assert "@EXECUTION_ENV@" not in config and "EXECUTION_ENV_PATH" in config
        assert (tmp_path / model / "1" / "model.py").read_text("utf-8").count("TritonPythonModel") >= 1
    assert "decoupled: true" in (tmp_path / "voice_clone_stream" / "config.pbtxt").read_text("utf-8")
    assert install_extra_models(tmp_path) == []  # present models are left alone (a GPU target's configs)
    (tmp_path / "voice_encode" / "config.pbtxt").write_text("custom", "utf-8")
    assert install_extra_models(tmp_path) == [] and (tmp_path / "voice_encode" / "config.pbtxt").read_text() == "custom"
    assert install_extra_models(tmp_path, force=True) == list(EXTRA_MODELS)
    assert main([str(tmp_path / "missing")]) == 2
