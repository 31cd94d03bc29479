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


def ort_matmul_rate(threads: int, op: str, x: np.ndarray, weight: np.ndarray, out_type: int) -> float:
    """Operations per second (2 per multiply-add) of ``x @ weight`` as a one-node onnxruntime graph ``op``."""
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    n = x.shape[0]
    graph = helper.make_graph(
        [helper.make_node(op, ["x", "w"], ["y"])],
        op,
        [helper.make_tensor_value_info("x", helper.np_dtype_to_tensor_dtype(x.dtype), list(x.shape))],
        [helper.make_tensor_value_info("y", out_type, [n, weight.shape[1]])],
        [numpy_helper.from_array(weight, "w")],
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return 2 * n * x.shape[1] * weight.shape[1] / best_seconds(lambda: session.run(None, {"x": x}))


def ort_gemm_flops(threads: int, n: int = GEMM_N) -> float:
    """fp32 FLOP/s of the same matmul as a one-node onnxruntime graph (the serving side's kernels)."""
    from onnx import TensorProto

    rng = np.random.default_rng(0)
    x, w = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    return ort_matmul_rate(threads, "MatMul", x, w, TensorProto.FLOAT)


def ort_int8_gemm_ops(threads: int, n: int = GEMM_N) -> float:
    """uint8 x int8 -> int32 operations per second of an n^3 MatMulInteger (VNNI/AMX where the CPU has them)."""
    from onnx import TensorProto

    rng = np.random.default_rng(0)
    x, w = rng.integers(0, 255, (n, n)).astype(np.uint8), rng.integers(-128, 127, (n, n)).astype(np.int8)
    return ort_matmul_rate(threads, "MatMulInteger", x, w, TensorProto.INT32)


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
