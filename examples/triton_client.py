"""Call the ``voice_clone`` Triton model with plain ``tritonclient``, over HTTP and over gRPC.

No gsv-triton import: this is all a direct Triton user needs (pip install 'tritonclient[http,grpc]' soundfile).

    python examples/triton_client.py --reference ref.wav --prompt-text "参考音频说的话" --text "你好，世界。"

writes out_http.wav and out_grpc.wav (the same seed, so the same audio). The tensor contract is in
model_repository/voice_clone/config.pbtxt.
"""

from __future__ import annotations

import argparse
import io

import numpy as np
import soundfile as sf
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def make_inputs(client_module, args: argparse.Namespace, reference: bytes) -> list:
    """One InferInput per tensor; strings and the reference file are BYTES tensors of shape [1]."""

    def tensor(name: str, value, datatype: str):
        if datatype == "BYTES":
            array = np.array([value if isinstance(value, bytes) else value.encode("utf-8")], dtype=np.object_)
        else:
            array = np.array([value], dtype={"INT32": np.int32, "INT64": np.int64, "FP32": np.float32}[datatype])
        item = client_module.InferInput(name, [1], datatype)
        item.set_data_from_numpy(array)
        return item

    return [
        tensor("text", args.text, "BYTES"),
        tensor("text_language", args.text_language, "BYTES"),
        tensor("prompt_text", args.prompt_text, "BYTES"),
        tensor("prompt_language", args.prompt_language, "BYTES"),
        tensor("reference_audio", reference, "BYTES"),
        tensor("top_k", 15, "INT32"),
        tensor("top_p", 1.0, "FP32"),
        tensor("temperature", 1.0, "FP32"),
        tensor("speed", 1.0, "FP32"),
        tensor("seed", args.seed, "INT64"),
        tensor("cut_punc", "，。,.?!", "BYTES"),
    ]


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
        save(http.infer("voice_clone", make_inputs(httpclient, args, reference)), "out_http.wav")
        # gRPC: same tensors, same model.
        grpc = grpcclient.InferenceServerClient(f"{args.host}:{args.grpc_port}")
        save(grpc.infer("voice_clone", make_inputs(grpcclient, args, reference), client_timeout=600.0), "out_grpc.wav")
    except InferenceServerException as exc:
        # Bad inputs come back as errors naming the tensor, e.g. "top_p: must be in (0, 1], got 1.5".
        raise SystemExit(f"voice_clone failed: {exc.message()}") from None


if __name__ == "__main__":
    main()
