"""T2S network: upstream key layout, ONNX parity, the serving loop against the eager twin, demo init quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_t2s import TINY, tiny_decoder

from gsv_export.onnx_utils import FP32_REL_TOL, ort_session, relative_error
from gsv_export.optimize import save_optimized
from gsv_export.t2s_export import export_t2s
from gsv_triton.backend.t2s.loop import T2SRunner
from gsv_triton.backend.t2s.sampling import exponential_noise
from gsv_triton.errors import InputError, UserError
from gsv_triton.networks.t2s import T2SConfig, Text2SemanticDecoder, demo_init_
from gsv_triton.networks.t2s_reference import reference_generate

KEYS_DIR = Path("/work/shared/reference/data")


@pytest.fixture(scope="module")
def decoder():
    """The tiny GPT alone, for the tests that run no ONNX graph (once, not per graph variant)."""
    torch.set_num_threads(1)
    return tiny_decoder()


@pytest.fixture(scope="module", params=["as_exported", "ort_optimized"])
def tiny(request, tmp_path_factory):
    """The tiny GPT, its graphs, and a runner; once as exported and once with the saved onnxruntime fusions."""
    torch.set_num_threads(1)
    decoder = tiny_decoder()
    paths = export_t2s(decoder, tmp_path_factory.mktemp("t2s"))
    if request.param == "ort_optimized":
        for path in paths.values():
            save_optimized(path)
    prefill, step = ort_session(paths["prefill"], threads=1), ort_session(paths["step"], threads=1)
    return decoder, prefill, step, T2SRunner(prefill, step)


def _inputs(gen: torch.Generator, b: int, tx: int, ty: int):
    ids = torch.randint(0, TINY.phoneme_vocab_size, (b, tx), generator=gen)
    bert = torch.randn(b, 1024, tx, generator=gen)
    prompt = torch.randint(0, 1024, (1, ty), generator=gen).expand(b, ty).contiguous()
    return ids, bert, prompt


def _prefill_feeds(ids, lengths, bert, prompt):
    return {"phone_ids": ids.numpy(), "phone_lengths": lengths.numpy(), "bert": bert.numpy(),
            "prompt_codes": prompt.numpy()}


# ---------------------------------------------------------------- checkpoint layout


@pytest.mark.parametrize(("version", "phonemes"), [("v2", 732), ("v1", 512)])
def test_full_size_state_dict_equals_upstream_keys(version, phonemes):
    expected = json.loads((KEYS_DIR / f"keys_gpt_{version}.json").read_text())
    with torch.device("meta"):
        decoder = Text2SemanticDecoder(T2SConfig(phoneme_vocab_size=phonemes))
    ours = {"model." + k: list(v.shape) for k, v in decoder.state_dict().items()}
    assert ours == expected


def test_upstream_state_dict_loads_strictly():
    decoder = Text2SemanticDecoder(TINY)
    upstream = {"model." + k: torch.randn(v.shape) for k, v in decoder.state_dict().items()}
    fresh = Text2SemanticDecoder(TINY)
    fresh.load_state_dict({k[len("model."):]: v for k, v in upstream.items()}, strict=True)
    key = "h.layers.1.self_attn.in_proj_weight"
    assert torch.equal(fresh.state_dict()[key], upstream["model." + key])


def test_config_round_trip_and_upstream_yaml_values():
    cfg = T2SConfig(phoneme_vocab_size=512, n_layer=6, inference_top_k=5)
    raw = cfg.to_checkpoint_config()
    assert raw["model"]["linear_units"] == 2048 and raw["data"]["pad_val"] == 1024
    assert set(raw) == {"train", "optimizer", "data", "model", "inference"}
    assert T2SConfig.from_checkpoint_config(raw) == cfg
    raw["model"]["linear_units"] = 999  # not read upstream either: the FFN is 4 * hidden
    assert T2SConfig.from_checkpoint_config(raw) == cfg


BAD_CONFIGS = [
    {"model": {"vocab_size": 1025}},  # missing keys
    {"model": dict(T2SConfig().to_checkpoint_config()["model"], EOS=7)},  # EOS must be vocab_size - 1
    {"model": dict(T2SConfig().to_checkpoint_config()["model"], head=7)},  # 512 not divisible by 7
]


@pytest.mark.parametrize("bad", BAD_CONFIGS)
def test_bad_config_is_a_user_error(bad):
    with pytest.raises(UserError):
        T2SConfig.from_checkpoint_config(bad)


# ---------------------------------------------------------------- ONNX parity


@pytest.mark.parametrize(("tx", "ty"), [(9, 6), (23, 17)])
def test_prefill_onnx_matches_torch(tiny, tx, ty):
    decoder, prefill, _, _ = tiny
    gen = torch.Generator().manual_seed(tx)
    ids, bert, prompt = _inputs(gen, 2, tx, ty)
    lengths = torch.tensor([tx, tx - 4])  # row 1 is right-padded
    with torch.no_grad():
        expected = decoder.prefill(ids, lengths, bert, prompt)
    got = prefill.run(None, _prefill_feeds(ids, lengths, bert, prompt))
    for name, ref, act in zip(("logits", "k_cache", "v_cache"), expected, got, strict=True):
        assert ref.shape == (2, 1025) if name == "logits" else ref.shape == (TINY.n_layer, tx + ty, 2, 128)
        assert relative_error(ref, act) <= FP32_REL_TOL, name


@pytest.mark.parametrize("past_len", [7, 31])
def test_step_onnx_matches_torch(tiny, past_len):
    decoder, _, step, _ = tiny
    gen = torch.Generator().manual_seed(past_len)
    past = [torch.randn(past_len, 2, 4, 32, generator=gen) for _ in range(2 * TINY.n_layer)]
    key_valid = torch.ones(2, past_len, dtype=torch.bool)
    key_valid[1, 2:5] = False
    token, position = torch.tensor([3, 1000]), torch.tensor([past_len, past_len + 40])
    with torch.no_grad():
        expected = decoder.step(token, position, key_valid, past)
    feeds = {"token": token.numpy(), "position": position.numpy(), "key_valid": key_valid.numpy()}
    feeds.update({f"past_{kv}_{i // 2}": past[i].numpy() for i, kv in enumerate(["k", "v"] * TINY.n_layer)})
    got = step.run(None, feeds)
    for ref, act in zip(expected, got, strict=True):
        assert relative_error(ref, act) <= FP32_REL_TOL


def test_padded_row_and_step_agree_with_unpadded_prefill(decoder):
    """Prefill(Tx, Ty+1) == prefill(Tx, Ty) then one step, with the text right-padded inside a batch of 2."""
    gen = torch.Generator().manual_seed(5)
    tx, ty = 11, 8
    ids, bert, prompt = _inputs(gen, 1, tx, ty + 1)
    with torch.no_grad():
        full_logits, full_k, _ = decoder.prefill(ids, torch.tensor([tx]), bert, prompt)
        pad = 4  # row 0 gets 4 junk phones appended; row 1 is another sentence of full width
        ids_p = torch.cat([torch.cat([ids, torch.randint(0, 700, (1, pad), generator=gen)], 1),
                           torch.randint(0, 700, (1, tx + pad), generator=gen)])
        bert_p = torch.cat([torch.cat([bert, torch.randn(1, 1024, pad, generator=gen)], 2),
                            torch.randn(1, 1024, tx + pad, generator=gen)])
        lengths = torch.tensor([tx, tx + pad])
        _, k, v = decoder.prefill(ids_p, lengths, bert_p, prompt[:, :ty].expand(2, ty))
        key_valid = torch.ones(2, tx + pad + ty, dtype=torch.bool)
        key_valid[0, tx : tx + pad] = False
        past = [t.unflatten(-1, (4, 32)) for i in range(TINY.n_layer) for t in (k[i], v[i])]
        logits, new_k, _ = decoder.step(prompt[0, ty:].expand(2), torch.tensor([ty, ty]), key_valid, past)
    assert relative_error(full_logits[0], logits[0]) <= FP32_REL_TOL
    assert relative_error(full_k[:, -1, 0], new_k[:, 0]) <= FP32_REL_TOL
    assert relative_error(full_k[:, :tx, 0], k[:, :tx, 0]) <= FP32_REL_TOL


# ---------------------------------------------------------------- full generation


SETTINGS = [
    {"top_k": 15, "top_p": 1.0, "temperature": 1.0, "repetition_penalty": 1.35},
    {"top_k": 5, "top_p": 0.8, "temperature": 0.7, "repetition_penalty": 1.35},
    {"top_k": 1024, "top_p": 1.0, "temperature": 1.0, "repetition_penalty": 1.0},
    {"top_k": 30, "top_p": 0.9, "temperature": 1.3, "repetition_penalty": 1.1},
]


def _reference(decoder, ids, bert, prompt, seed, max_new_tokens, eos_enabled=True, **settings):
    rng = np.random.default_rng(seed)
    return reference_generate(decoder, ids, bert, prompt, noise=lambda n: exponential_noise(rng, n),
                              max_new_tokens=max_new_tokens, eos_enabled=eos_enabled, **settings).numpy()


@pytest.mark.parametrize("setting", range(len(SETTINGS)))
def test_runner_equals_eager_reference(tiny, setting):
    decoder, _, _, runner = tiny
    gen = torch.Generator().manual_seed(100 + setting)
    ids, bert, prompt = _inputs(gen, 1, 14, 10)
    lengths = []
    for seed in (setting, 10 + setting):
        expected = _reference(decoder, ids, bert, prompt, seed, 160, **SETTINGS[setting])
        got = runner.generate(ids.numpy(), bert.numpy(), prompt[0].numpy(), seed=seed, max_new_tokens=160,
                              **SETTINGS[setting])
        np.testing.assert_array_equal(got[0], expected)
        assert len(got[0]) >= 11
        lengths.append(len(got[0]))
    assert all(11 <= n <= 159 for n in lengths)


def test_eos_stops_and_long_runs_both_occur(tiny):
    _, _, _, runner = tiny
    gen = torch.Generator().manual_seed(9)
    ids, bert, prompt = _inputs(gen, 1, 14, 10)
    lengths = [len(runner.generate(ids.numpy(), bert.numpy(), prompt[0].numpy(), seed=s, max_new_tokens=200)[0])
               for s in range(8)]
    assert min(lengths) < 199 and len(set(lengths)) >= 4, lengths  # some EOS stops, of varied lengths
    assert max(lengths) >= 60, lengths


def test_batch_rows_equal_each_row_alone(tiny):
    _, _, _, runner = tiny
    gen = torch.Generator().manual_seed(3)
    ids, bert, prompt = _inputs(gen, 2, 16, 9)
    phones = [ids[0].numpy(), ids[1, :10].numpy()]  # different text lengths -> padded batch
    feats = [bert[0].numpy(), bert[1, :, :10].numpy()]
    batch = runner.generate(phones, feats, prompt[0].numpy(), seed=[4, 5], max_new_tokens=150)
    for r, seed in enumerate((4, 5)):
        alone = runner.generate([phones[r]], [feats[r]], prompt[0].numpy(), seed=seed, max_new_tokens=150)
        np.testing.assert_array_equal(batch[r], alone[0])
    assert len(batch[0]) != len(batch[1]) or not np.array_equal(batch[0], batch[1])


def test_cap_drops_the_first_token_like_upstream(tiny):
    decoder, _, _, runner = tiny
    gen = torch.Generator().manual_seed(4)
    ids, bert, prompt = _inputs(gen, 1, 8, 5)
    got = runner.generate(ids.numpy(), bert.numpy(), prompt[0].numpy(), seed=1, max_new_tokens=40,
                          eos_enabled=False)
    expected = _reference(decoder, ids, bert, prompt, 1, 40, eos_enabled=False, top_k=15, top_p=1.0,
                          temperature=1.0, repetition_penalty=1.35)
    assert len(got[0]) == 39
    np.testing.assert_array_equal(got[0], expected)
    assert (got[0] < 1024).all()


def test_eos_is_suppressed_for_the_first_eleven_steps(decoder, tmp_path):
    """With an EOS-dominant head every run stops at the first allowed step: exactly 11 tokens."""
    eager = Text2SemanticDecoder(TINY).eval()
    eager.load_state_dict(decoder.state_dict())
    with torch.no_grad():
        eager.ar_predict_layer.weight[TINY.eos] = eager.h.layers[-1].norm2.bias * 10.0
    paths = export_t2s(eager, tmp_path)
    runner = T2SRunner(ort_session(paths["prefill"], threads=1), ort_session(paths["step"], threads=1))
    gen = torch.Generator().manual_seed(8)
    ids, bert, prompt = _inputs(gen, 1, 8, 5)
    settings = {"top_k": 15, "top_p": 1.0, "temperature": 1.0, "repetition_penalty": 1.35}
    expected = _reference(eager, ids, bert, prompt, 0, 100, **settings)
    got = runner.generate(ids.numpy(), bert.numpy(), prompt[0].numpy(), seed=0, max_new_tokens=100, **settings)
    assert len(expected) == 11
    np.testing.assert_array_equal(got[0], expected)


def test_runner_rejects_bad_inputs(tiny):
    _, _, _, runner = tiny
    ids = np.zeros(5, dtype=np.int64)
    bert = np.zeros((1024, 5), dtype=np.float32)
    with pytest.raises(InputError) as err:
        runner.generate([ids], [bert], np.zeros(0, dtype=np.int64))
    assert err.value.field == "prompt_codes"
    with pytest.raises(InputError) as err:
        runner.generate([ids], [bert[:, :4]], np.zeros(3, dtype=np.int64))
    assert err.value.field == "bert"
    with pytest.raises(InputError) as err:
        runner.generate([ids], [bert], np.zeros(3, dtype=np.int64), top_k=0)
    assert err.value.field == "top_k"


# ---------------------------------------------------------------- demo init quality


def test_demo_init_conditions_on_text_and_does_not_cycle(tiny):
    _, prefill, _, runner = tiny
    gen = torch.Generator().manual_seed(11)
    ids, bert, prompt = _inputs(gen, 1, 20, 30)
    lengths = torch.tensor([20])
    base = prefill.run(None, _prefill_feeds(ids, lengths, bert, prompt))[0]
    changed = ids.clone()
    changed[0, 3] = (changed[0, 3] + 1) % TINY.phoneme_vocab_size
    moved = prefill.run(None, _prefill_feeds(changed, lengths, bert, prompt))[0]
    assert np.abs(moved - base).max() > 0.1  # measured ~0.36 with logit std ~2
    for top_k in (15, 1):
        tokens = runner.generate(ids.numpy(), bert.numpy(), prompt[0].numpy(), top_k=top_k, seed=0,
                                 max_new_tokens=101, eos_enabled=False)[0]
        assert len(tokens) == 100
        assert len(set(tokens.tolist())) > 50, (top_k, len(set(tokens.tolist())))  # measured 92 / 70


@pytest.mark.slow
def test_full_size_export_parity_and_generation(tmp_path):
    decoder = Text2SemanticDecoder(T2SConfig()).eval()
    demo_init_(decoder, torch.Generator().manual_seed(0))
    paths = export_t2s(decoder, tmp_path)
    runner = T2SRunner(ort_session(paths["prefill"]), ort_session(paths["step"]))
    gen = torch.Generator().manual_seed(1)
    tx, ty = 30, 50
    ids = torch.randint(0, 732, (1, tx), generator=gen)
    bert = torch.randn(1, 1024, tx, generator=gen) * 0.3
    prompt = torch.randint(0, 1024, (1, ty), generator=gen)
    with torch.no_grad():
        expected = decoder.prefill(ids, torch.tensor([tx]), bert, prompt)
    got = runner.prefill.run(None, _prefill_feeds(ids, torch.tensor([tx]), bert, prompt))
    for ref, act in zip(expected, got, strict=True):
        assert relative_error(ref, act) <= FP32_REL_TOL
    settings = {"top_k": 15, "top_p": 1.0, "temperature": 1.0, "repetition_penalty": 1.35}
    reference = _reference(decoder, ids, bert, prompt, 0, 60, **settings)
    tokens = runner.generate(ids.numpy(), bert.numpy(), prompt[0].numpy(), seed=0, max_new_tokens=60, **settings)
    np.testing.assert_array_equal(tokens[0], reference)
