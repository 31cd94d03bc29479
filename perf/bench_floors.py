"""This machine's hardware floors: memory copy bandwidth, fp32 GEMM and int8 GEMM throughput (measured first).

Everything else in perf/ is judged against these: a T2S decode step must read all its weights once (bandwidth
floor), and the SoVITS decoder's convolutions are GEMMs (compute floor; in int8, onnxruntime's uint8 x int8
kernels, which use VNNI/AMX where the CPU has them). Best of 5 runs each.

    .venv/bin/python perf/bench_floors.py [--threads 1 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from bench_gateway import cpu_model

COPY_BYTES = 512 * 1024 * 1024
GEMM_N = 2048
REPEATS = 5


def best_seconds(fn, repeats: int = REPEATS) -> float:
    fn()  # warm-up: page faults, thread pools
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def copy_bandwidth() -> float:
    """Bytes moved per second (read + write) by a large numpy copy."""
    src = np.ones(COPY_BYTES // 4, dtype=np.float32)
    dst = np.empty_like(src)
    return 2 * COPY_BYTES / best_seconds(lambda: np.copyto(dst, src))


def torch_gemm_flops(threads: int, n: int = GEMM_N) -> float:
    """fp32 FLOP/s of an n x n x n matmul in torch with ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / best_seconds(lambda: a @ b)


def ort_gemm_flops(threads: int, n: int = GEMM_N) -> float:
    """fp32 FLOP/s of the same matmul as a one-node onnxruntime graph (the serving side's kernels)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
        [weight],
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = rng.standard_normal((n, n)).astype(np.float32)
    return 2 * n**3 / best_seconds(lambda: session.run(None, {"x": x}))


def ort_int8_gemm_ops(threads: int, n: int = GEMM_N) -> float:
    """uint8 x int8 -> int32 multiply-adds per second (x2) of an n^3 MatMulInteger in onnxruntime."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.integers(-128, 127, (n, n)).astype(np.int8), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["x", "w"], ["y"])],
        "int8_gemm",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])],
        [weight],
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = rng.integers(0, 255, (n, n)).astype(np.uint8)
    return 2 * n**3 / best_seconds(lambda: session.run(None, {"x": x}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    load = os.getloadavg()[0]
    from gsv_triton.precision import int8_dot_instructions

    int8 = ", ".join(int8_dot_instructions()) or "none"
    print(f"\nHardware floors, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_model()}, "
          f"{os.cpu_count()} CPUs, int8 dot-product instructions: {int8}; load average {load:.1f} at start\n")
    print("| floor | value |")
    print("|---|---|")
    print(f"| memory copy bandwidth (numpy, {COPY_BYTES >> 20} MiB, read + write) | {copy_bandwidth() / 1e9:.1f} GB/s |")
    for threads in args.threads:
        print(f"| fp32 GEMM {GEMM_N}^3, torch, {threads} thread(s) | {torch_gemm_flops(threads) / 1e9:.0f} GFLOP/s |")
        print(f"| fp32 GEMM {GEMM_N}^3, onnxruntime, {threads} thread(s) | {ort_gemm_flops(threads) / 1e9:.0f} GFLOP/s |")
        print(f"| int8 GEMM {GEMM_N}^3 (MatMulInteger), onnxruntime, {threads} thread(s) | "
              f"{ort_int8_gemm_ops(threads) / 1e9:.0f} GOP/s |")
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
