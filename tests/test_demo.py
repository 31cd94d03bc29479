"""Demo checkpoints: the CLI, the upstream key manifests at full size, and the pretrained folders' file sets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gsv_export.checkpoints import AttrDict, load_gpt, load_sovits
from gsv_export.demo import BERT_DIR, BERT_VOCAB_SIZE, HUBERT_DIR, bert_vocab, write_demo_gpt, write_demo_sovits

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("gsv-triton")
MANIFESTS = REPO / "tests" / "data"  # upstream's keys and shapes, one JSON file per version


def _raw_weights(path: Path) -> dict[str, torch.Tensor]:
    """The file's own ``weight`` dict (upstream names), read without our loader's conversions."""
    with torch.serialization.safe_globals([(AttrDict, "utils.HParams")]):
        return torch.load(path, map_location="cpu", weights_only=True)["weight"]


@pytest.mark.slow  # a fresh interpreter imports transformers and writes a 150 MB BERT folder
def test_cli_writes_loadable_tiny_demo(tmp_path):
    out = tmp_path / "demo"
    run = subprocess.run(
        [str(CLI), "demo-checkpoints", "--size", "tiny", "--version", "v2", "--seed", "3", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    for name in ("gpt.ckpt", "sovits.pth", HUBERT_DIR, BERT_DIR):
        assert name in run.stdout
    assert (out / "gpt.ckpt").read_bytes()[:2] == b"PK"
    assert {p.name for p in (out / HUBERT_DIR).iterdir()} == {
        "config.json",
        "preprocessor_config.json",
        "pytorch_model.bin",
    }
    assert {p.name for p in (out / BERT_DIR).iterdir()} == {
        "config.json",
        "pytorch_model.bin",
        "vocab.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
    }
    gpt = load_gpt(out / "gpt.ckpt")
    sovits = load_sovits(out / "sovits.pth")
    assert gpt.symbol_version == sovits.symbol_version == sovits.model_version == "v2"
    assert sovits.has_posterior  # pretrained-like

    hubert = torch.load(out / HUBERT_DIR / "pytorch_model.bin", weights_only=True)
    assert "encoder.pos_conv_embed.conv.weight_g" in hubert  # released files' weight-norm names
    config = json.loads((out / HUBERT_DIR / "config.json").read_text())
    assert (config["conv_kernel"], config["conv_stride"]) == ([10, 3, 3, 3, 3, 2, 2], [5, 2, 2, 2, 2, 2, 2])
    assert config["feat_extract_norm"] == "group" and config["hidden_size"] == 768
    bert_config = json.loads((out / BERT_DIR / "config.json").read_text())
    assert (bert_config["hidden_size"], bert_config["vocab_size"]) == (1024, BERT_VOCAB_SIZE)


def test_cli_bad_output_path_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run = subprocess.run(
        [str(CLI), "demo-checkpoints", "--size", "tiny", "--out", str(blocker)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and str(blocker) in lines[0] and "not a directory" in lines[0], run.stderr


def test_demo_is_seeded(tmp_path):
    a = load_gpt(write_demo_gpt(tmp_path / "a.ckpt", seed=5)).state_dict
    b = load_gpt(write_demo_gpt(tmp_path / "b.ckpt", seed=5)).state_dict
    c = load_gpt(write_demo_gpt(tmp_path / "c.ckpt", seed=6)).state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["ar_predict_layer.weight"], c["ar_predict_layer.weight"])


def test_bert_vocab_layout():
    vocab = bert_vocab()
    assert len(vocab) == len(set(vocab)) == BERT_VOCAB_SIZE
    assert vocab[0] == "[PAD]" and vocab[1] == "[unused1]"
    assert vocab[100:104] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert {"一", "你", "好", "龥", "，", "。", "a", "1", "!"} <= set(vocab)


@pytest.mark.slow
@pytest.mark.parametrize("version", ["v2", "v1"])
def test_full_size_files_match_upstream_manifests(tmp_path, version):
    gpt_path = write_demo_gpt(tmp_path / "gpt.ckpt", "full", version)
    sovits_path = write_demo_sovits(tmp_path / "sovits.pth", "full", version)
    expected_gpt = json.loads((MANIFESTS / f"keys_gpt_{version}.json").read_text())
    expected_sovits = json.loads((MANIFESTS / f"keys_sovits_{version}.json").read_text())
    # Same names, same shapes, same order as the state dicts of the upstream classes.
    assert [(k, list(v.shape)) for k, v in _raw_weights(gpt_path).items()] == list(expected_gpt.items())
    assert [(k, list(v.shape)) for k, v in _raw_weights(sovits_path).items()] == list(expected_sovits.items())
    # And the loaders accept them as the right version.
    gpt = load_gpt(gpt_path)
    sovits = load_sovits(sovits_path)
    assert gpt.symbol_version == sovits.model_version == sovits.symbol_version == version
    assert {"model." + k: list(v.shape) for k, v in gpt.state_dict.items()} == expected_gpt
    assert {k: list(v.shape) for k, v in sovits.state_dict.items()} == expected_sovits
