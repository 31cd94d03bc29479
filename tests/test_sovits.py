"""SoVITS v1/v2: upstream key layout, weight-norm folding, ONNX parity, output lengths, conditioning."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gsv_export.onnx_utils import FP32_REL_TOL, ort_session, relative_error
from gsv_export.optimize import save_optimized
from gsv_export.sovits_export import export_sovits
from gsv_triton.networks.sovits import (
    REF_BINS_V2,
    SPEC_CHANNELS,
    SynthesizerTrn,
    default_hparams,
    demo_init_,
    fold_weight_norm,
    frames_for_speed,
    unfold_weight_norm,
)

# Upstream key manifests (every key and shape of upstream's state dicts), copied beside the tests.
MANIFEST_DIR = Path(__file__).resolve().parent / "data"
SAMPLES_PER_FRAME = 640

torch.set_num_threads(1)


def _manifest(version: str) -> dict[str, list[int]]:
    return json.loads((MANIFEST_DIR / f"keys_sovits_{version}.json").read_text())


def _tiny(version: str = "v2", seed: int = 0) -> SynthesizerTrn:
    model = SynthesizerTrn.from_hparams(default_hparams("tiny", version)["model"], version)
    demo_init_(model, torch.Generator().manual_seed(seed))
    return model


@pytest.fixture(scope="module")
def tiny_v2() -> SynthesizerTrn:
    return _tiny("v2")


@pytest.fixture(scope="module", params=["as_exported", "ort_optimized"])
def onnx_paths(request, tiny_v2: SynthesizerTrn, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The exported graphs, and the same graphs after the export's saved onnxruntime optimisations."""
    paths = export_sovits(tiny_v2, tmp_path_factory.mktemp("sovits_onnx"))
    if request.param == "ort_optimized":
        for path in paths.values():
            save_optimized(path)
    return paths


def _inputs(model: SynthesizerTrn, n_codes: int, n_phones: int, speed: float, seed: int, batch: int = 1):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 1024, (batch, n_codes), generator=g)
    phones = torch.randint(0, model.enc_p.text_embedding.num_embeddings, (batch, n_phones), generator=g)
    ge = torch.randn(batch, model.gin_channels, 1, generator=g)
    noise = torch.randn(batch, model.inter_channels, frames_for_speed(n_codes, speed), generator=g)
    return codes, phones, ge, noise


def _speech_like_spec(f0: float, seed: int, seconds: float = 2.0) -> torch.Tensor:
    """|STFT| (n_fft 2048, hop 640, reflect pad 704) of a noisy harmonic tone: [1, 1025, frames]."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(32000 * seconds)) / 32000
    x = sum(0.1 / k * torch.sin(2 * math.pi * f0 * k * t) for k in range(1, 10))
    x = x + 0.02 * torch.randn(t.shape, generator=g)
    x = torch.nn.functional.pad(x[None, None], (704, 704), mode="reflect")[0, 0]
    s = torch.stft(x, 2048, 640, 2048, torch.hann_window(2048), center=False, return_complex=True)
    return torch.sqrt(s.real**2 + s.imag**2 + 1e-8)[None]


def _rel_change(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(max |b - a| / max |a|, ||b - a|| / ||a||)."""
    return float((b - a).abs().max() / a.abs().max()), float((b - a).norm() / a.norm())


# -- keys, shapes, weight norm ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_full_size_keys_and_shapes_match_upstream_manifest(version: str) -> None:
    model = SynthesizerTrn.from_hparams(default_hparams("full", version)["model"], version, include_posterior=True)
    sd = model.state_dict()
    upstream = unfold_weight_norm(sd)
    assert {k: list(v.shape) for k, v in upstream.items()} == _manifest(version)
    folded = fold_weight_norm(upstream)
    assert folded.keys() == sd.keys()
    assert all(torch.equal(folded[k], sd[k]) for k in sd)


def test_without_posterior_has_no_enc_q_and_loads_a_fine_tuned_layout() -> None:
    full = SynthesizerTrn.from_hparams(default_hparams("tiny", "v2")["model"], "v2", include_posterior=True)
    upstream = unfold_weight_norm(full.state_dict())
    fine_tuned = {k: v.half() for k, v in upstream.items() if not k.startswith("enc_q")}  # as upstream saves
    model = SynthesizerTrn.from_hparams(default_hparams("tiny", "v2")["model"], "v2")
    assert not any(k.startswith("enc_q") for k in model.state_dict())
    model.load_state_dict(fold_weight_norm(fine_tuned))  # strict


@pytest.mark.parametrize("transpose", [False, True])
def test_fold_matches_torch_weight_norm(transpose: bool) -> None:
    """The fold formula against torch's own weight_norm (dim 0; input channels for ConvTranspose1d)."""
    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose1d(6, 4, 5, 2) if transpose else torch.nn.Conv1d(6, 4, 5)
    conv = torch.nn.utils.parametrizations.weight_norm(conv, dim=0)
    with torch.no_grad():
        conv.parametrizations.weight.original0.mul_(torch.rand_like(conv.parametrizations.weight.original0) + 0.5)
    g = conv.parametrizations.weight.original0.detach()
    v = conv.parametrizations.weight.original1.detach()
    assert g.shape == (v.shape[0], 1, 1)
    folded = fold_weight_norm({"dec.ups.0.weight_g": g, "dec.ups.0.weight_v": v, "dec.ups.0.bias": conv.bias})
    assert torch.allclose(folded["dec.ups.0.weight"], conv.weight.detach(), rtol=1e-6, atol=1e-7)


def test_fold_rejects_a_half_pair() -> None:
    with pytest.raises(KeyError):
        fold_weight_norm({"dec.ups.0.weight_g": torch.ones(2, 1, 1)})


@pytest.mark.parametrize("bad", ["v3", "v4"])
def test_unsupported_versions_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not supported"):
        SynthesizerTrn.from_hparams(default_hparams("tiny", "v2")["model"], bad)


def test_gin_other_than_512_is_refused() -> None:
    hps = default_hparams("tiny", "v2")["model"] | {"gin_channels": 1024}
    with pytest.raises(ValueError, match="gin_channels"):
        SynthesizerTrn.from_hparams(hps, "v2")


# -- lengths and speed --------------------------------------------------------------------------------


@pytest.mark.parametrize("speed", [1.0, 1.25, 0.8])
def test_output_length(tiny_v2: SynthesizerTrn, speed: float) -> None:
    n = 17
    codes, phones, ge, noise = _inputs(tiny_v2, n, 9, speed, seed=1)
    audio = tiny_v2.decode(codes, phones, ge, noise, 0.5)
    expected = 1280 * n if speed == 1.0 else SAMPLES_PER_FRAME * (int(2 * n / speed) + 1)
    assert audio.shape == (1, 1, expected)
    assert frames_for_speed(50, 1.25) * SAMPLES_PER_FRAME == 51840  # spec 2.2.7's worked example


def test_speed_one_resample_is_exact_identity(tiny_v2: SynthesizerTrn) -> None:
    codes, phones, ge, noise = _inputs(tiny_v2, 13, 7, 1.0, seed=2)
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        tiny_v2.enc_p.encoder2.register_forward_hook(lambda _m, _i, out: seen.__setitem__("before", out)),
        tiny_v2.enc_p.proj.register_forward_pre_hook(lambda _m, args: seen.__setitem__("after", args[0])),
    ]
    try:
        tiny_v2.decode(codes, phones, ge, noise, 0.5)
    finally:
        for h in hooks:
            h.remove()
    assert torch.equal(seen["before"], seen["after"])


# -- ONNX parity --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_frames50", [37, 90])
def test_vq_encode_onnx_matches_torch(tiny_v2, onnx_paths, n_frames50: int) -> None:
    ssl = torch.randn(2, 768, n_frames50, generator=torch.Generator().manual_seed(n_frames50))
    ref = tiny_v2.extract_codes(ssl)
    out = ort_session(onnx_paths["vq_encode"], threads=1).run(None, {"ssl": ssl.numpy()})[0]
    assert out.dtype == np.int64 and out.shape == (2, n_frames50 // 2)
    assert np.array_equal(out, ref.numpy())


@pytest.mark.parametrize("n_spec", [31, 120])
def test_ref_encoder_onnx_matches_torch(tiny_v2, onnx_paths, n_spec: int) -> None:
    spec = torch.rand(1, SPEC_CHANNELS, n_spec, generator=torch.Generator().manual_seed(n_spec)) * 20
    ref = tiny_v2.reference_embedding(spec)
    out = ort_session(onnx_paths["ref_encoder"], threads=1).run(None, {"spec": spec.numpy()})[0]
    assert out.shape == (1, 512, 1)
    assert relative_error(ref, out) <= FP32_REL_TOL


@pytest.mark.parametrize(("n_codes", "n_phones", "speed"), [(9, 6, 1.0), (31, 17, 1.0), (24, 11, 1.25), (15, 8, 0.8)])
def test_decode_onnx_matches_torch(tiny_v2, onnx_paths, n_codes: int, n_phones: int, speed: float) -> None:
    codes, phones, ge, noise = _inputs(tiny_v2, n_codes, n_phones, speed, seed=n_codes)
    scale = torch.tensor([0.5])
    ref = tiny_v2.decode(codes, phones, ge, noise, scale)
    feeds = {
        "codes": codes.numpy(),
        "phone_ids": phones.numpy(),
        "ge": ge.numpy(),
        "noise": noise.numpy(),
        "noise_scale": scale.numpy(),
    }
    out = ort_session(onnx_paths["sovits_decode"], threads=1).run(None, feeds)[0]
    assert out.shape == (1, 1, SAMPLES_PER_FRAME * noise.shape[2])
    assert relative_error(ref, out) <= FP32_REL_TOL


def test_decode_with_lengths_onnx_matches_torch(tiny_v2, tmp_path: Path) -> None:
    paths = export_sovits(tiny_v2, tmp_path, with_lengths=True)
    codes, phones, ge, noise = _inputs(tiny_v2, 14, 8, 1.0, seed=3, batch=2)
    code_lengths, phone_lengths = torch.tensor([14, 10]), torch.tensor([8, 5])
    scale = torch.tensor([0.5])
    ref = tiny_v2.decode(codes, phones, ge, noise, scale, code_lengths, phone_lengths)
    feeds = {
        "codes": codes.numpy(),
        "phone_ids": phones.numpy(),
        "ge": ge.numpy(),
        "noise": noise.numpy(),
        "noise_scale": scale.numpy(),
        "code_lengths": code_lengths.numpy(),
        "phone_lengths": phone_lengths.numpy(),
    }
    out = ort_session(paths["sovits_decode"], threads=1).run(None, feeds)[0]
    assert relative_error(ref, out) <= FP32_REL_TOL


# -- batching -----------------------------------------------------------------------------------------


def test_padded_batch_matches_single_runs(tiny_v2: SynthesizerTrn) -> None:
    codes, phones, ge, noise = _inputs(tiny_v2, 20, 12, 1.0, seed=4, batch=2)
    lengths, phone_lengths = [20, 14], [12, 8]
    batched = tiny_v2.decode(codes, phones, ge, noise, 0.5, torch.tensor(lengths), torch.tensor(phone_lengths))
    # Like upstream, the decoder's timbre bias leaks from padding into the last few frames of a padded
    # item (its receptive field), so compare the padded item away from its end.
    tail = 10 * SAMPLES_PER_FRAME
    for i, (n, p) in enumerate(zip(lengths, phone_lengths, strict=True)):
        single = tiny_v2.decode(
            codes[i : i + 1, :n], phones[i : i + 1, :p], ge[i : i + 1], noise[i : i + 1, :, : 2 * n], 0.5
        )
        keep = single.shape[2] - (tail if n < max(lengths) else 0)
        assert relative_error(single[..., :keep], batched[i : i + 1, :, :keep]) <= 1e-5


# -- demo init: the audio must depend on every input --------------------------------------------------


def test_demo_audio_depends_on_phones_codes_and_timbre(tiny_v2: SynthesizerTrn) -> None:
    codes, phones, _, noise = _inputs(tiny_v2, 20, 12, 1.0, seed=5)
    ge = tiny_v2.reference_embedding(_speech_like_spec(120.0, 1))
    ge_other = tiny_v2.reference_embedding(_speech_like_spec(230.0, 2))
    audio = tiny_v2.decode(codes, phones, ge, noise, 0.5)

    assert float(audio.abs().max()) < 1.0
    assert float(audio.std()) > 0.05
    assert float((audio.abs() > 0.99).float().mean()) < 0.01  # tanh not saturated

    phones2 = phones.clone()
    phones2[0, 5] = (phones2[0, 5] + 7) % tiny_v2.enc_p.text_embedding.num_embeddings
    codes2 = codes.clone()
    codes2[0, 10] = (codes2[0, 10] + 1) % 1024
    for label, other in [
        ("phone", tiny_v2.decode(codes, phones2, ge, noise, 0.5)),
        ("code", tiny_v2.decode(codes2, phones, ge, noise, 0.5)),
        ("ge", tiny_v2.decode(codes, phones, ge_other, noise, 0.5)),
    ]:
        peak, energy = _rel_change(audio, other)
        assert peak > 0.1, f"one {label} changed: peak change {peak:.3f}"
        assert energy > 0.03, f"one {label} changed: energy change {energy:.3f}"


def test_demo_codes_are_varied(tiny_v2: SynthesizerTrn) -> None:
    ssl = torch.randn(1, 768, 81, generator=torch.Generator().manual_seed(6))
    codes = tiny_v2.extract_codes(ssl)
    assert codes.dtype == torch.int64 and codes.shape == (1, 40)
    assert codes.unique().numel() >= 10
    book = tiny_v2.quantizer.vq.layers[0]._codebook
    assert book.embed.unique(dim=0).shape[0] == 1024 and float(book.inited) == 1.0


def test_demo_init_is_deterministic() -> None:
    a, b, c = _tiny("v2", seed=3).state_dict(), _tiny("v2", seed=3).state_dict(), _tiny("v2", seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["dec.conv_pre.weight"], c["dec.conv_pre.weight"])


# -- v1 ----------------------------------------------------------------------------------------------


def test_v1_uses_all_spectrogram_bins_and_322_phones() -> None:
    v1, v2 = _tiny("v1"), _tiny("v2")
    assert v1.enc_p.text_embedding.num_embeddings == 322 and v2.enc_p.text_embedding.num_embeddings == 732
    spec = _speech_like_spec(150.0, 7, seconds=1.0)
    high = spec.clone()
    high[:, REF_BINS_V2:] += 5.0  # energy only above bin 704
    assert not torch.allclose(v1.reference_embedding(spec), v1.reference_embedding(high))
    assert torch.equal(v2.reference_embedding(spec), v2.reference_embedding(high))
    codes, phones, ge, noise = _inputs(v1, 8, 5, 1.0, seed=8)
    assert v1.decode(codes, phones, ge, noise, 0.5).shape == (1, 1, 1280 * 8)
