"""HuBERT / BERT wrappers: loading, the features they must produce, ONNX parity, and folder errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gsv_export.demo import write_demo_bert, write_demo_hubert
from gsv_export.onnx_utils import FP32_REL_TOL, ort_session, relative_error
from gsv_export.optimize import save_optimized
from gsv_export.pretrained_export import export_bert, export_ssl
from gsv_triton.errors import UserError
from gsv_triton.networks.pretrained import BERT_DIM, HUBERT_DIM, hubert_frames, load_bert, load_hubert

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pretrained")
    return {"hubert": write_demo_hubert(d / "hubert", "tiny", seed=0), "bert": write_demo_bert(d / "bert", "tiny")}


@pytest.fixture(scope="module")
def hubert(folders):
    return load_hubert(folders["hubert"])


@pytest.fixture(scope="module")
def bert(folders):
    return load_bert(folders["bert"])


@pytest.fixture(scope="module")
def exported_dir(tmp_path_factory, hubert, bert) -> Path:
    """The exported graphs as written, with the BERT tokenizer files beside them."""
    d = tmp_path_factory.mktemp("onnx")
    export_ssl(hubert, d)
    export_bert(bert, d)
    return d


@pytest.fixture(scope="module", params=["as_exported", "ort_optimized"])
def onnx_dir(request, tmp_path_factory, hubert, bert, exported_dir) -> Path:
    """The exported graphs, and the same graphs after the export's saved onnxruntime optimisations."""
    if request.param == "as_exported":
        return exported_dir
    d = tmp_path_factory.mktemp("onnx_optimized")
    for path in (export_ssl(hubert, d), export_bert(bert, d)):
        save_optimized(path)
    return d


def _wav(batch: int, n: int, seed: int) -> torch.Tensor:
    return torch.rand(batch, n, generator=torch.Generator().manual_seed(seed)) * 1.6 - 0.8


def test_hubert_loads_released_weight_norm_names(folders, hubert):
    # The demo file stores the positional conv as weight_g/weight_v (dim=2, as transformers 4.x wrote it);
    # the loaded effective weight must be g * v / ||v|| and not a fresh random init.
    raw = torch.load(folders["hubert"] / "pytorch_model.bin", weights_only=True)
    g, v = raw["encoder.pos_conv_embed.conv.weight_g"], raw["encoder.pos_conv_embed.conv.weight_v"]
    expected = v * (g / v.norm(dim=(0, 1), keepdim=True))
    actual = hubert.model.encoder.pos_conv_embed.conv.weight
    assert torch.allclose(actual, expected, rtol=1e-5, atol=1e-7)


def test_hubert_frames_and_input_dependence(hubert):
    with torch.no_grad():
        for n in (400, 719, 720, 16_000 + 9600):
            assert hubert(_wav(1, n, n)).shape == (1, HUBERT_DIM, hubert_frames(n))
        assert hubert_frames(16_000 + 9600) == 79
        a, b = hubert(_wav(1, 16_000, 1)), hubert(_wav(1, 16_000, 2))
    assert float((a - b).abs().mean() / a.abs().mean()) > 0.1


@pytest.mark.parametrize("batch, n", [(1, 16_000), (2, 23_456)])
def test_ssl_onnx_matches_torch(hubert, onnx_dir, batch, n):
    wav = _wav(batch, n, seed=n)
    with torch.no_grad():
        ref = hubert(wav)
    out = ort_session(onnx_dir / "ssl.onnx").run(["ssl"], {"wav16k": wav.numpy()})[0]
    assert out.shape == (batch, HUBERT_DIM, hubert_frames(n))
    assert relative_error(ref, out) <= FP32_REL_TOL


def _tokens(length: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(200, 21000, (2, length), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones_like(ids)
    mask[1, length - 3 :] = 0  # row 1 is right-padded
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def test_bert_is_hidden_states_minus_3(folders, bert):
    from transformers import AutoModelForMaskedLM

    full = AutoModelForMaskedLM.from_pretrained(
        str(folders["bert"]), local_files_only=True, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    inputs = _tokens(9, seed=0)
    with torch.no_grad():
        expected = full(**inputs, output_hidden_states=True).hidden_states[-3]
        actual = bert(**inputs)
    assert len(bert.bert.encoder.layer) == full.config.num_hidden_layers - 2
    assert actual.shape == (2, 9, BERT_DIM)
    assert torch.allclose(actual, expected, atol=1e-5)
    # Padding is masked: row 1's valid positions equal the unpadded sequence alone.
    with torch.no_grad():
        alone = bert(**{k: v[1:, :6] for k, v in inputs.items()})
    assert torch.allclose(actual[1:, :6], alone, atol=1e-5)


@pytest.mark.parametrize("length", [5, 17])
def test_bert_onnx_matches_torch(bert, onnx_dir, length):
    inputs = _tokens(length, seed=length)
    with torch.no_grad():
        ref = bert(**inputs)
    feeds = {k: v.numpy() for k, v in inputs.items()}
    out = ort_session(onnx_dir / "bert.onnx").run(["hidden"], feeds)[0]
    assert out.shape == (2, length, BERT_DIM)
    assert relative_error(ref, out) <= FP32_REL_TOL
    assert relative_error(ref[1, : length - 3], out[1, : length - 3]) <= FP32_REL_TOL


def test_bert_tokenizer_travels_with_onnx(exported_dir):
    from transformers import AutoTokenizer

    onnx_dir = exported_dir  # once: the saved onnxruntime optimisations rewrite the graphs, not these files
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        assert (onnx_dir / name).is_file(), name
    tok = AutoTokenizer.from_pretrained(str(onnx_dir), local_files_only=True)
    enc = tok("你好，世界！")
    ids = enc["input_ids"]
    assert ids[0] == 101 and ids[-1] == 102 and len(ids) == 6 + 2  # one token per character
    assert 100 not in ids  # no [UNK]
    assert np.array_equal(enc["token_type_ids"], [0] * len(ids))


def test_bad_folders_are_one_line_errors(tmp_path, folders):
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    no_weights = tmp_path / "no_weights"
    shutil.copytree(folders["hubert"], no_weights)
    (no_weights / "pytorch_model.bin").unlink()
    bad_weights = tmp_path / "bad_weights"
    shutil.copytree(folders["hubert"], bad_weights)
    (bad_weights / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    wrong_width = tmp_path / "wrong_width"
    shutil.copytree(folders["hubert"], wrong_width, ignore=shutil.ignore_patterns("*.bin"))
    config = json.loads((wrong_width / "config.json").read_text())
    (wrong_width / "config.json").write_text(json.dumps({**config, "hidden_size": 512}))
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = [
        (load_hubert, tmp_path / "absent", "folder not found"),
        (load_hubert, a_file, "got a file"),
        (load_hubert, no_config, "no config.json"),
        (load_hubert, no_weights, "no weights"),
        (load_hubert, bad_weights, "cannot load the HuBERT model"),
        (load_hubert, wrong_width, "hidden_size=768"),
        (load_hubert, folders["bert"], "model_type 'bert'"),
        (load_bert, folders["hubert"], "model_type 'hubert'"),
    ]
    for loader, path, fragment in cases:
        with pytest.raises(UserError) as exc:
            loader(path)
        message = str(exc.value)
        assert "\n" not in message and str(path) in message and fragment in message, message


def test_bert_loads_legacy_layernorm_names(tmp_path, folders, bert):
    # Older released BERT files name LayerNorm parameters gamma/beta; they must load to the same network.
    legacy = tmp_path / "legacy"
    shutil.copytree(folders["bert"], legacy, ignore=shutil.ignore_patterns("*.bin"))
    state = torch.load(folders["bert"] / "pytorch_model.bin", weights_only=True)
    renamed = {
        k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
        for k, v in state.items()
    }
    assert any(k.endswith("LayerNorm.gamma") for k in renamed)
    torch.save(renamed, legacy / "pytorch_model.bin")
    inputs = _tokens(7, seed=7)
    with torch.no_grad():
        assert torch.equal(load_bert(legacy)(**inputs), bert(**inputs))
