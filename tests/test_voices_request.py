"""The request rules of the stored-voice inputs (voice_clone), voice_encode and voice_convert (fast, no Triton)."""

from __future__ import annotations

import numpy as np
import pytest

from gsv_triton.backend.requests import (
    BERT_DIM,
    parse_convert_request,
    parse_request,
    parse_voice_request,
)
from gsv_triton.errors import InputError


def _b(value: str | bytes) -> np.ndarray:
    return np.array([value.encode() if isinstance(value, str) else value], dtype=np.object_)


def _features(phones: int = 5, codes: int = 20, gin: int = 8) -> dict[str, np.ndarray]:
    return {
        "prompt_phone_ids": np.arange(phones, dtype=np.int64) + 10,
        "prompt_bert": np.zeros((BERT_DIM, phones), np.float32),
        "prompt_codes": np.arange(codes, dtype=np.int64),
        "ge": np.ones(gin, np.float32),
    }


def _voice_inputs(**changes) -> dict[str, np.ndarray]:
    inputs = {"text": _b("你好。"), "text_language": _b("zh"), **_features()}
    inputs.update(changes)
    return {k: v for k, v in inputs.items() if v is not None}


def test_stored_voice_features_replace_the_prompt_and_the_clip() -> None:
    parsed = parse_request(_voice_inputs(), draw_seed=lambda: 3)
    assert parsed.prompt_text == "" and parsed.reference_audio == b"" and parsed.seed == 3
    np.testing.assert_array_equal(parsed.prompt_codes, np.arange(20))
    assert parsed.prompt_bert.shape == (BERT_DIM, 5) and parsed.ge.shape == (8,)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"prompt_bert": None}, "prompt_bert"),  # one of a pair without the other
        ({"ge": None}, "ge"),
        ({"prompt_phone_ids": None, "prompt_bert": None}, "prompt_text"),  # then the transcript is required
        ({"prompt_codes": None, "ge": None}, "reference_audio"),  # and the clip
        ({"prompt_bert": np.zeros((BERT_DIM, 4), np.float32)}, "prompt_bert"),
        ({"prompt_phone_ids": np.array([-1, 2, 3, 4, 5])}, "prompt_phone_ids"),
        ({"prompt_phone_ids": np.array([0, 1, 2, 3, 100_000])}, "prompt_phone_ids"),
        ({"prompt_codes": np.array([0, 1024])}, "prompt_codes"),
        ({"ge": np.array([np.nan], np.float32)}, "ge"),
    ],
)
def test_bad_stored_voice_inputs_name_their_tensor(change, field) -> None:
    with pytest.raises(InputError) as error:
        parse_request(_voice_inputs(**change))
    assert error.value.field == field


def test_voice_encode_and_voice_convert_rules() -> None:
    encoded = parse_voice_request(
        {"reference_audio": _b(b"RIFF"), "prompt_text": _b("参考"), "prompt_language": _b("中文")}
    )
    assert encoded.prompt_text == "参考。" and encoded.prompt_language == "all_zh"  # api.py's end mark and codes
    with pytest.raises(InputError) as missing:
        parse_voice_request({"reference_audio": _b(b"RIFF"), "prompt_language": _b("zh")})
    assert missing.value.field == "prompt_text"

    base = {"source_audio": _b(b"RIFF"), "text": _b("你好"), "text_language": _b("zh")}
    by_ge = parse_convert_request({**base, "ge": np.ones(4, np.float32), "seed": np.array([5])})
    assert by_ge.reference_audio == b"" and by_ge.seed == 5 and by_ge.ge.shape == (4,)
    by_clip = parse_convert_request({**base, "reference_audio": _b(b"RIFF2")}, draw_seed=lambda: 1)
    assert by_clip.reference_audio == b"RIFF2" and by_clip.ge is None
    for change, field in (({"source_audio": None}, "source_audio"), ({}, "reference_audio"),
                          ({"speed": np.array([9.0], np.float32), "ge": np.ones(4, np.float32)}, "speed")):  # fmt: skip
        inputs = {k: v for k, v in {**base, **change}.items() if v is not None}
        with pytest.raises(InputError) as error:
            parse_convert_request(inputs)
        assert error.value.field == field
