"""Which graph a Triton model loads (``precision`` parameter: auto / fp32 / int8) on CPUs with and without int8
dot-product instructions, and the tiny int8 decoder twin against its fp32 graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsv_triton.errors import UserError
from gsv_triton.precision import choose_graph, cpu_flags, int8_dot_instructions, int8_twin

VNNI = frozenset({"fpu", "avx2", "avx512f", "avx512_vnni"})
NO_VNNI = frozenset({"fpu", "avx2", "avx512f"})


@pytest.fixture
def graphs(tmp_path: Path) -> tuple[Path, Path]:
    fp32 = tmp_path / "sovits_decode.onnx"
    fp32.write_bytes(b"fp32")
    twin = int8_twin(fp32)
    twin.write_bytes(b"int8")
    return fp32, twin


def test_the_twin_sits_beside_the_graph() -> None:
    assert int8_twin(Path("/r/t2s/1/t2s_step.onnx")) == Path("/r/t2s/1/t2s_step.int8.onnx")


def test_auto_loads_int8_only_where_the_cpu_has_int8_dot_instructions(graphs) -> None:
    fp32, twin = graphs
    assert choose_graph(fp32, "auto", VNNI) == (twin, "int8 (precision: auto; the CPU has avx512_vnni)")
    for flags in (NO_VNNI, frozenset({"avx_vnni"}), frozenset({"amx_int8", "avx512_vnni"})):
        chosen, why = choose_graph(fp32, None, flags)  # no parameter: auto
        assert chosen == (twin if flags & {"avx_vnni", "amx_int8", "avx512_vnni"} else fp32), why
    assert choose_graph(fp32, "auto", NO_VNNI)[1] == "fp32 (precision: auto; the CPU has no VNNI/AMX int8 instructions)"


def test_fp32_and_int8_settings_and_their_errors(graphs, tmp_path) -> None:
    fp32, twin = graphs
    assert choose_graph(fp32, "FP32", VNNI)[0] == fp32
    assert choose_graph(fp32, "int8", NO_VNNI)[0] == twin  # forced, whatever the CPU
    alone = tmp_path / "t2s_step.onnx"
    alone.write_bytes(b"fp32")
    assert choose_graph(alone, "auto", VNNI) == (alone, "fp32 (no int8 graph exported)")
    with pytest.raises(UserError, match="t2s_step.int8.onnx does not exist"):
        choose_graph(alone, "int8", VNNI)
    with pytest.raises(UserError, match="precision parameter 'bf16'"):
        choose_graph(alone, "bf16", VNNI)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx512f avx512_vnni sse2\n\n"
                       "processor\t: 1\nflags\t\t: fpu\n")  # fmt: skip
    assert cpu_flags(cpuinfo) == frozenset({"fpu", "avx512f", "avx512_vnni", "sse2"})
    assert cpu_flags(tmp_path / "missing") == frozenset()
    assert int8_dot_instructions(cpu_flags(cpuinfo)) == ["avx512_vnni"]


def test_spinning_is_off_unless_a_config_allows_it() -> None:
    from gsv_triton.backend.ort_session import session_options, spinning_parameter

    assert [spinning_parameter(p) for p in ({}, {"allow_spinning": "0"}, {"allow_spinning": "1"},
                                            {"allow_spinning": "true"})] == [False, False, True, True]  # fmt: skip
    key = "session.intra_op.allow_spinning"
    assert session_options(2).get_session_config_entry(key) == "0"
    assert session_options(2, spinning=True).get_session_config_entry(key) == "1"
