"""Call the ``voice_clone`` Triton model with plain ``tritonclient``, over HTTP and over gRPC.

No gsv-triton import: this is all a direct Triton user needs (pip install 'tritonclient[http,grpc]' soundfile).

    python examples/triton_client.py --reference ref.wav --prompt-text "参考音频说的话" --text "你好，世界。"

writes out_http.wav and out_grpc.wav (the same seed, so the same audio). The datatypes come from the server's
model metadata; the whole tensor contract is gsv_triton/contract.py (and model_repository/voice_clone/config.pbtxt).
"""

from __future__ import annotations

import argparse
import io

import numpy as np
import soundfile as sf
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def input_datatypes(client) -> dict[str, str]:
    """{input: Triton datatype} as the server declares them (its model metadata): no table to keep here."""
    as_json = {"as_json": True} if isinstance(client, grpcclient.InferenceServerClient) else {}
    return {t["name"]: t["datatype"] for t in client.get_model_metadata("voice_clone", **as_json)["inputs"]}


def make_inputs(client_module, datatypes: dict[str, str], args: argparse.Namespace, reference: bytes) -> list:
    """One InferInput per tensor of shape [1]; strings and the reference file are BYTES tensors."""
    numpy_types = {"BYTES": np.object_, "INT32": np.int32, "INT64": np.int64, "FP32": np.float32}
    values = {
        "text": args.text, "text_language": args.text_language, "prompt_text": args.prompt_text,
        "prompt_language": args.prompt_language, "reference_audio": reference,
        "top_k": 15, "top_p": 1.0, "temperature": 1.0, "speed": 1.0, "seed": args.seed, "cut_punc": "，。,.?!",
    }  # fmt: skip
    inputs = []
    for name, value in values.items():
        datatype = datatypes[name]
        value = value.encode("utf-8") if isinstance(value, str) else value
        item = client_module.InferInput(name, [1], datatype)
        item.set_data_from_numpy(np.array([value], dtype=numpy_types[datatype]))
        inputs.append(item)
    return inputs


def save(result, path: str) -> None:
    audio = result.as_numpy("audio")  # float32 [N], 32 kHz mono in [-1, 1]
    rate = int(result.as_numpy("sample_rate")[0])
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    with open(path, "wb") as f:
        f.write(buffer.getvalue())
    print(f"{path}: {len(audio) / rate:.2f} s, tokens per sentence {result.as_numpy('segment_tokens').tolist()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--reference", required=True, help="3-10 s reference audio file")
    parser.add_argument("--prompt-text", required=True, help="what the reference says")
    parser.add_argument("--prompt-language", default="zh")
    parser.add_argument("--text", default="你好，欢迎使用语音合成。")
    parser.add_argument("--text-language", default="zh")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    with open(args.reference, "rb") as f:
        reference = f.read()

    try:
        # HTTP: the client sends the request as JSON + binary tensor data.
        http = httpclient.InferenceServerClient(f"{args.host}:{args.http_port}", network_timeout=600.0)
        inputs = make_inputs(httpclient, input_datatypes(http), args, reference)
        save(http.infer("voice_clone", inputs), "out_http.wav")
        # gRPC: same tensors, same model.
        grpc = grpcclient.InferenceServerClient(f"{args.host}:{args.grpc_port}")
        inputs = make_inputs(grpcclient, input_datatypes(grpc), args, reference)
        save(grpc.infer("voice_clone", inputs, client_timeout=600.0), "out_grpc.wav")
    except InferenceServerException as exc:
        # Bad inputs come back as a JSON error naming the tensor, e.g.
        # {"gsv_input_error": {"field": "top_p", "status": 400, "message": "must be in (0, 1], got 1.5"}}
        raise SystemExit(f"voice_clone failed: {exc.message()}") from None


if __name__ == "__main__":
    main()
