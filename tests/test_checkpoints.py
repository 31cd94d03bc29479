"""Checkpoint I/O: upstream layouts, version headers and detection, and one-line errors for bad files."""

from __future__ import annotations

import hashlib
import pickletools
import sys
import types
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from gsv_export import checkpoints as ck
from gsv_export.checkpoints import AttrDict, load_gpt, load_sovits, save_gpt, save_sovits
from gsv_export.demo import write_demo_gpt, write_demo_sovits
from gsv_triton.errors import UserError
from gsv_triton.networks.sovits import default_hparams

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Tiny demo files: GPT v1/v2 and pretrained-like SoVITS v1/v2 (with enc_q, fp16, no header)."""
    d = tmp_path_factory.mktemp("ckpt")
    return {
        "gpt_v2": write_demo_gpt(d / "gpt_v2.ckpt", "tiny", "v2", seed=1),
        "gpt_v1": write_demo_gpt(d / "gpt_v1.ckpt", "tiny", "v1", seed=2),
        "sovits_v2": write_demo_sovits(d / "sovits_v2.pth", "tiny", "v2", seed=3),
        "sovits_v1": write_demo_sovits(d / "sovits_v1.pth", "tiny", "v1", seed=4),
    }


@pytest.fixture(scope="module")
def raw_v2(files) -> tuple[dict, dict]:
    """(hparams dict, upstream state dict in fp32) of the v2 SoVITS demo file, to re-save in variants."""
    loaded = load_sovits(files["sovits_v2"])
    return loaded.hparams.to_dict(), loaded.state_dict


def _assert_one_line(exc: pytest.ExceptionInfo, path: Path, *needles: str) -> None:
    message = str(exc.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    for needle in needles:
        assert needle in message, message


# ----------------------------------------------------------------------------------------------------
# GPT


def test_gpt_roundtrip_fp16_and_fp32(tmp_path, files):
    gpt = load_gpt(files["gpt_v2"])
    assert gpt.symbol_version == "v2"
    assert gpt.info == ck.GPT_INFO
    assert all(v.dtype == torch.float32 for v in gpt.state_dict.values())
    assert not any(k.startswith("model.") for k in gpt.state_dict)

    state = {k: v + 0.001 * torch.arange(v.numel()).reshape(v.shape) for k, v in gpt.state_dict.items()}
    fp32 = load_gpt(save_gpt(tmp_path / "fp32.ckpt", gpt.config, state, fp16=False))
    fp16 = load_gpt(save_gpt(tmp_path / "fp16.ckpt", gpt.config, state, fp16=True))
    for key, value in state.items():
        assert torch.equal(fp32.state_dict[key], value), key
        assert torch.equal(fp16.state_dict[key], value.half().float()), key
    assert fp16.config == gpt.config

    raw = torch.load(tmp_path / "fp16.ckpt", weights_only=True)  # upstream layout, plain weights_only load
    assert list(raw) == ["weight", "config", "info"]
    assert all(k.startswith("model.") and v.dtype == torch.float16 for k, v in raw["weight"].items())


def test_gpt_symbol_version_v1(files):
    gpt = load_gpt(files["gpt_v1"])
    assert gpt.symbol_version == "v1"
    assert gpt.state_dict["ar_text_embedding.word_embeddings.weight"].shape[0] == 512


def test_gpt_config_mismatch_and_missing_key(tmp_path, files):
    gpt = load_gpt(files["gpt_v2"])
    config = {**gpt.config, "model": {**gpt.config["model"], "phoneme_vocab_size": 512}}
    bad = save_gpt(tmp_path / "mismatch.ckpt", config, gpt.state_dict)
    with pytest.raises(UserError) as exc:
        load_gpt(bad)
    _assert_one_line(exc, bad, "phoneme_vocab_size=512")

    state = dict(gpt.state_dict)
    del state["h.layers.0.linear1.bias"]
    bad = save_gpt(tmp_path / "missing.ckpt", gpt.config, state)
    with pytest.raises(UserError) as exc:
        load_gpt(bad)
    _assert_one_line(exc, bad, "missing the key 'model.h.layers.0.linear1.bias'")

    state = {**gpt.state_dict, "extra.weight": torch.zeros(2)}
    bad = save_gpt(tmp_path / "extra.ckpt", gpt.config, state)
    with pytest.raises(UserError) as exc:
        load_gpt(bad)
    _assert_one_line(exc, bad, "unexpected key 'model.extra.weight'")


# ----------------------------------------------------------------------------------------------------
# SoVITS: layout, hparams, headers


def test_sovits_pretrained_like_file(files):
    sv = load_sovits(files["sovits_v2"])
    assert (sv.model_version, sv.symbol_version, sv.header) == ("v2", "v2", None)
    assert sv.has_posterior
    assert any(k.endswith(".weight_g") for k in sv.state_dict)  # weight norm still unfolded
    assert all(v.dtype == torch.float32 for v in sv.state_dict.values() if v.is_floating_point())
    v1 = load_sovits(files["sovits_v1"])
    assert (v1.model_version, v1.symbol_version) == ("v1", "v1")
    assert v1.state_dict["enc_p.text_embedding.weight"].shape[0] == 322


def test_hparams_attribute_dict(files):
    hps = load_sovits(files["sovits_v2"]).hparams
    assert isinstance(hps, AttrDict) and isinstance(hps.model, AttrDict) and isinstance(hps["data"], AttrDict)
    assert hps.data.hop_length == hps["data"]["hop_length"] == 640
    assert "model" in hps and "nope" not in hps.model
    assert hps.model.version == "v2" and hps.model.semantic_frame_rate == "25hz"
    kwargs = vars(hps.model)
    assert kwargs["upsample_rates"] == [10, 8, 2, 2, 2]
    assert kwargs["resblock_dilation_sizes"] == [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    assert set(hps.keys()) >= {"train", "data", "model"} and dict(hps.items())["name"] == hps.name
    assert hps.to_dict()["model"] == dict(kwargs)


def test_sovits_config_pickles_as_upstream_hparams(tmp_path, raw_v2):
    hparams, state = raw_v2
    path = save_sovits(tmp_path / "ft.pth", hparams, state)
    with zipfile.ZipFile(path) as zf:
        pkl = zf.read(next(n for n in zf.namelist() if n.endswith("/data.pkl")))
    ops = list(pickletools.genops(pkl))
    assert ops[0][0].name == "PROTO" and ops[0][1] == 2
    globals_ = {arg for op, arg, _ in ops if op.name == "GLOBAL"}
    assert globals_ == {
        "collections OrderedDict",
        "utils HParams",
        "torch._utils _rebuild_tensor_v2",
        "torch HalfStorage",
    }
    # A reader holding upstream's class (emulated: HParams with attribute storage) gets nested HParams.
    module = types.ModuleType("utils")

    class HParams:
        pass

    HParams.__module__ = "utils"
    module.HParams = HParams
    previous = sys.modules.get("utils")
    sys.modules["utils"] = module
    try:
        top = torch.load(path, weights_only=False)
    finally:
        if previous is None:
            del sys.modules["utils"]
        else:
            sys.modules["utils"] = previous
    assert isinstance(top["config"], HParams) and isinstance(top["config"].model, HParams)
    assert vars(top["config"].model)["hidden_channels"] == hparams["model"]["hidden_channels"]
    assert not any("enc_q" in k for k in top["weight"])  # fine-tune layout


def test_sovits_finetune_layout_without_posterior(tmp_path, raw_v2):
    hparams, state = raw_v2
    sv = load_sovits(save_sovits(tmp_path / "ft.pth", hparams, state, fp16=True, drop_posterior=True))
    assert not sv.has_posterior
    expected = {k: v.half().float() for k, v in state.items() if not k.startswith("enc_q.")}
    assert sv.state_dict.keys() == expected.keys()
    assert all(torch.equal(sv.state_dict[k], v) for k, v in expected.items())


@pytest.mark.parametrize("version, header", [("v1", "00"), ("v2", "01"), ("v2", None)])
def test_sovits_header_roundtrip(tmp_path, files, version, header):
    src = load_sovits(files[f"sovits_{version}"])
    path = save_sovits(
        tmp_path / "h.pth", src.hparams.to_dict(), src.state_dict, fp16=True, header=header, drop_posterior=False
    )
    head = path.read_bytes()[:4]
    assert head == (header.encode() if header else b"PK") + b"\x03\x04"
    back = load_sovits(path)
    assert (back.model_version, back.symbol_version, back.header) == (version, version, header)
    assert back.state_dict.keys() == src.state_dict.keys()
    # The source is already fp16-exact, so the fp16 round trip reproduces it bit for bit.
    assert all(torch.equal(back.state_dict[k], v) for k, v in src.state_dict.items())


@pytest.mark.parametrize("header, name", [("05", "v2Pro"), ("06", "v2ProPlus")])
def test_a_pro_header_on_v2_weights_is_refused(tmp_path, raw_v2, header, name):
    """The header says Pro, the weights lack sv_emb: upstream would load them into a Pro network half-initialised."""
    hparams, state = raw_v2
    path = save_sovits(tmp_path / f"{header}.pth", hparams, state, header=header)
    with pytest.raises(UserError) as exc:
        load_sovits(path)
    _assert_one_line(exc, path, f"SoVITS {name} ", "holds v2 weights")


@pytest.mark.parametrize("header, name", [("02", "v3"), ("03", "v3 LoRA"), ("04", "v4 LoRA")])
def test_sovits_unsupported_header_refused(tmp_path, raw_v2, header, name):
    hparams, state = raw_v2
    path = save_sovits(tmp_path / f"{header}.pth", hparams, state, header=header)
    with pytest.raises(UserError) as exc:
        load_sovits(path)
    _assert_one_line(exc, path, f"SoVITS {name} ", "not supported")


@pytest.mark.parametrize(
    "extra, name",
    [
        ({"cfm.proj.weight": torch.zeros(2, 2)}, "v3/v4"),
        ({"wns1.enc.weight": torch.zeros(2, 2)}, "v3/v4"),
    ],
)
def test_sovits_structure_refused(tmp_path, raw_v2, extra, name):
    hparams, state = raw_v2
    path = save_sovits(tmp_path / "s.pth", hparams, {**state, **extra})
    with pytest.raises(UserError) as exc:
        load_sovits(path)
    _assert_one_line(exc, path, f"SoVITS {name} ", "detected by weights")


def test_sovits_hash_table_wins(tmp_path, raw_v2, monkeypatch):
    hparams, state = raw_v2
    path = save_sovits(tmp_path / "pre.pth", hparams, state)
    digest = hashlib.md5(path.read_bytes()[: ck.HASH_BYTES]).hexdigest()
    monkeypatch.setitem(ck.PRETRAINED_HASHES, digest, ("v2", "v2Pro", False))
    with pytest.raises(UserError) as exc:
        load_sovits(path)
    _assert_one_line(exc, path, "v2Pro", "detected by hash")
    monkeypatch.setitem(ck.PRETRAINED_HASHES, digest, ("v2", "v2", False))  # like s2G488k: structure decides
    assert load_sovits(path).detection["source"] == "hash"


def test_sovits_missing_and_misshaped_keys(tmp_path, raw_v2):
    hparams, state = raw_v2
    broken = {k: v for k, v in state.items() if k != "dec.ups.0.weight_g"}
    path = save_sovits(tmp_path / "missing.pth", hparams, broken)
    with pytest.raises(UserError) as exc:
        load_sovits(path)
    _assert_one_line(exc, path, "missing the key 'dec.ups.0.weight_g'")

    key = "enc_p.encoder_text.attn_layers.0.conv_q.weight"
    reshaped = {**state, key: torch.zeros(3, 3, 1)}
    path = save_sovits(tmp_path / "shape.pth", hparams, reshaped)
    with pytest.raises(UserError) as exc:
        load_sovits(path)
    _assert_one_line(exc, path, key, "shape [3, 3, 1]")

    extra = {**state, "speaker_table.weight": torch.zeros(2, 2)}  # a part our network lacks: ignored
    sv = load_sovits(save_sovits(tmp_path / "extra.pth", hparams, extra))
    assert sv.ignored_keys == ["speaker_table.weight"] and "speaker_table.weight" not in sv.state_dict

    small = {**hparams, "model": {**hparams["model"], "n_layers": 1}}  # config no longer matches the weights
    path = save_sovits(tmp_path / "cfg.pth", small, state)
    with pytest.raises(UserError) as exc:
        load_sovits(path)
    _assert_one_line(exc, path, "unexpected key")


# ----------------------------------------------------------------------------------------------------
# Bad files: one line each, naming the file


def _bad_files(d: Path, files: dict[str, Path]) -> list[tuple[Path, str, str]]:
    """(path, which loader, expected fragment)."""
    good = files["sovits_v2"].read_bytes()
    (d / "empty.pth").write_bytes(b"")
    (d / "truncated.pth").write_bytes(good[: len(good) // 2])
    (d / "random.pth").write_bytes(
        torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).to(torch.uint8).numpy().tobytes()
    )
    (d / "text.pth").write_text("hello, not a checkpoint\n")
    torch.save([1, 2, 3], d / "list.pth")
    torch.save({"weight": {"a": torch.zeros(1)}, "config": types.SimpleNamespace(a=1)}, d / "global.pth")
    (d / "folder.pth").mkdir()
    return [
        (d / "empty.pth", "sovits", "empty file"),
        (d / "truncated.pth", "sovits", "not a readable PyTorch checkpoint"),
        (d / "truncated.pth", "gpt", "not a readable PyTorch checkpoint"),
        (d / "random.pth", "sovits", "not a PyTorch checkpoint"),
        (d / "text.pth", "gpt", "not a PyTorch checkpoint"),
        (d / "list.pth", "gpt", "top level is list"),
        (d / "global.pth", "sovits", "disallowed Python global types.SimpleNamespace"),
        (d / "folder.pth", "gpt", "not a file"),
        (d / "absent.pth", "sovits", "file not found"),
        (files["gpt_v2"], "sovits", "looks like a GPT (s1) .ckpt file"),
        (files["sovits_v2"], "gpt", "looks like a SoVITS (s2) .pth file"),
    ]


def test_bad_files_raise_one_line_user_errors(tmp_path, files):
    loaders = {"gpt": load_gpt, "sovits": load_sovits}
    for path, which, fragment in _bad_files(tmp_path, files):
        with pytest.raises(UserError) as exc:
            loaders[which](path)
        _assert_one_line(exc, path, fragment)


def test_headered_sovits_passed_as_gpt(tmp_path, raw_v2):
    hparams, state = raw_v2
    path = save_sovits(tmp_path / "pro.pth", hparams, state, header="05")
    with pytest.raises(UserError) as exc:
        load_gpt(path)
    _assert_one_line(exc, path, "SoVITS version header '05'")


def test_save_sovits_rejects_unknown_header(tmp_path, raw_v2):
    hparams, state = raw_v2
    with pytest.raises(ValueError):
        save_sovits(tmp_path / "x.pth", hparams, state, header="07")


def test_default_hparams_shape_the_file(tmp_path, raw_v2):
    # The writer takes the upstream-shaped dict from the SoVITS module as is.
    _, state = raw_v2
    hparams = default_hparams("tiny", "v2")
    sv = load_sovits(save_sovits(tmp_path / "d.pth", hparams, state, drop_posterior=True))
    assert sv.hparams.to_dict()["train"] == hparams["train"]


def test_loaded_files_build_the_networks(files):
    """What the exporter does next: the loaded configs build the networks and the weights load strictly."""
    from gsv_triton.networks.sovits import SynthesizerTrn, fold_weight_norm
    from gsv_triton.networks.t2s import T2SConfig, Text2SemanticDecoder

    gpt = load_gpt(files["gpt_v1"])
    decoder = Text2SemanticDecoder(T2SConfig.from_checkpoint_config(gpt.config))
    decoder.load_state_dict(gpt.state_dict, strict=True)

    sv = load_sovits(files["sovits_v1"])
    assert isinstance(sv.hparams.model, Mapping) and dict(sv.hparams.model)["n_heads"] == 2
    model = SynthesizerTrn.from_hparams(sv.hparams.model, sv.model_version, include_posterior=False)
    state = {k: v for k, v in sv.state_dict.items() if not k.startswith("enc_q.")}
    model.load_state_dict(fold_weight_norm(state), strict=True)
    sv.hparams.model.extra = {"a": 1}  # attribute assignment wraps like item assignment
    assert sv.hparams.model.extra.a == sv.hparams["model"]["extra"]["a"] == 1
