"""The ``gsv-triton`` command. Each subcommand imports its implementation lazily, so serving
hosts without torch can still run the serving commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gsv_triton.errors import GsvError


def _demo_checkpoints(args: argparse.Namespace) -> None:
    from gsv_export.demo import write_demo_checkpoints

    write_demo_checkpoints(Path(args.out), size=args.size, version=args.version, seed=args.seed)


def _export(args: argparse.Namespace) -> None:
    from gsv_export.build import export_repository

    export_repository(
        gpt=Path(args.gpt),
        sovits=Path(args.sovits),
        hubert=Path(args.hubert) if args.hubert else None,
        bert=Path(args.bert) if args.bert else None,
        out=Path(args.out),
        target=args.target,
        fp16=args.fp16,
        quantize=args.quantize,
        sv=Path(args.sv) if args.sv else None,
        name=args.name,
    )


def _remove_model(args: argparse.Namespace) -> None:
    from gsv_export.build import remove_model_set

    remove_model_set(Path(args.model_repository), args.name)


def _serve(args: argparse.Namespace) -> int:
    from gsv_triton.server import serve_main

    return serve_main(
        Path(args.model_repository),
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        address=args.address,
    )


def _client(args: argparse.Namespace) -> None:
    from gsv_triton.client import run

    run(args)


def _g2p(args: argparse.Namespace) -> None:
    import json

    from gsv_triton.text import g2p_report

    report = g2p_report(" ".join(args.text), language=args.language, version=args.version)
    print(json.dumps(report, ensure_ascii=False, indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gsv-triton", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo-checkpoints", help="write random-initialised checkpoints in upstream format")
    p.add_argument("--size", choices=["tiny", "full"], default="tiny")
    p.add_argument("--version", choices=["v1", "v2", "v2Pro", "v2ProPlus"], default="v2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_demo_checkpoints)

    p = sub.add_parser("export", help="export checkpoints to ONNX inside a Triton model repository")
    p.add_argument("--gpt", required=True, help="GPT (s1) .ckpt file")
    p.add_argument("--sovits", required=True, help="SoVITS (s2) .pth file")
    p.add_argument("--hubert", help="chinese-hubert-base folder (not needed to add a --name set to a repository)")
    p.add_argument("--bert", help="chinese-roberta-wwm-ext-large folder (likewise)")
    p.add_argument("--sv", help="speaker-verification file pretrained_eres2netv2w24s4ep4.ckpt (v2Pro/v2ProPlus only)")
    p.add_argument("--out", required=True, help="model repository to write")
    p.add_argument("--name", help="add this fine-tune as a model set of its own to the repository (or start one "
                   "with it); requests choose it by this name. Without: the default set")
    p.add_argument(
        "--target",
        choices=["cpu", "gpu", "gpu-torch"],
        default="cpu",
        help="cpu: ONNX for onnxruntime; gpu: ONNX/TensorRT for NVIDIA's Triton container; "
        "gpu-torch: torch weights served by our torch modules (CUDA fp16 where a GPU is seen, else CPU fp32)",
    )
    p.add_argument("--fp16", action="store_true", help="store ONNX weights in fp16 (GPU targets)")
    p.add_argument(
        "--quantize",
        choices=["none", "int8"],
        default="none",
        help="int8: also write int8 twins of the T2S decode step and the SoVITS decoder, loaded on CPUs with "
        "VNNI/AMX int8 instructions (config parameter precision: auto|fp32|int8; perf/README.md, CPU precision)",
    )
    p.set_defaults(func=_export)

    p = sub.add_parser("remove-model", help="take a model set (export --name) out of a model repository")
    p.add_argument("--model-repository", required=True)
    p.add_argument("name")
    p.set_defaults(func=_remove_model)

    p = sub.add_parser("serve", help="run tritonserver on an exported model repository")
    p.add_argument("--model-repository", required=True)
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--address", default="0.0.0.0", help="bind address of all three endpoints")
    p.set_defaults(func=_serve)

    from gsv_triton import client

    p = sub.add_parser("client", help="call the voice_clone pipeline over HTTP or gRPC and write a wav")
    client.add_arguments(p)
    p.set_defaults(func=_client)

    from gsv_cli.up import add_up_arguments, up_main
    from gsv_gateway.cli import add_gateway_arguments, gateway_main

    p = sub.add_parser("gateway", help="FastAPI gateway (/v1/voice-clone, api.py routes) in front of Triton")
    add_gateway_arguments(p)
    p.set_defaults(func=gateway_main)

    p = sub.add_parser("up", help="tritonserver and the gateway together, stopped together")
    add_up_arguments(p)
    p.set_defaults(func=up_main)

    p = sub.add_parser("g2p", help="show the text frontend's segments, phones, word2ph and ids as JSON")
    p.add_argument("--language", default="zh")
    p.add_argument("--version", choices=["v1", "v2"], default="v2")
    p.add_argument("text", nargs="+")
    p.set_defaults(func=_g2p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
    except GsvError as exc:
        print(f"gsv-triton {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
