"""``aux_voice_ids`` on ``/v1/voice-clone``: api_v2's ``aux_ref_audio_paths`` for our own route, by stored voice.

The request's voice (a ``voice_id``, or an uploaded clip encoded here by ``voice_encode``) keeps its prompt
features; its ``ge`` becomes the mean of its own and every auxiliary voice's, as upstream averages several
references (gateway/api_v2_refs.py). Stored features are exact, so the same seed gives the same audio as
api_v2's ``/tts`` with the clips those voices were made from.
"""

from __future__ import annotations

import dataclasses

from gsv_triton.errors import InputError

from .api_v2_params import MAX_AUX_REFERENCES
from .api_v2_refs import with_mean_ge
from .service import VoiceCloneService
from .validation import FORM_FIELDS, CloneFields
from .voices import VoiceStore, load_voice

FIELD = "aux_voice_ids"
STATUS_OTHER_MODEL = 422  # as a stored voice whose ge width is not the served model's


def aux_ids(raw: str | None) -> list[str]:
    """The comma-separated ids of ``raw`` (empty entries skipped); 400 beyond MAX_AUX_REFERENCES."""
    ids = [part.strip() for part in (raw or "").split(",") if part.strip()]
    if len(ids) > MAX_AUX_REFERENCES:
        raise InputError(FIELD, f"names {len(ids)} voices; at most {MAX_AUX_REFERENCES} are allowed")
    return ids


async def with_aux_voices(
    service: VoiceCloneService, voices: VoiceStore, fields: CloneFields, raw: str | None, request_id: str
) -> CloneFields:
    """``fields`` with its ``ge`` averaged over the voices ``raw`` names (unchanged when it names none)."""
    ids = aux_ids(raw)
    if not ids:
        return fields
    aux = [await load_voice(voices, voice_id, FIELD) for voice_id in ids]  # 404/422 before any Triton work
    if fields.voice is not None:
        main = dict(fields.voice)
    else:
        assert fields.reference_audio is not None and fields.prompt_text and fields.prompt_language
        model_set, main = await service.encode_voice(
            fields.reference_audio, fields.prompt_text, fields.prompt_language, request_id, FORM_FIELDS, fields.model
        )
        fields = dataclasses.replace(fields, model=model_set)
    ges = [main["ge"]]
    for voice_id, voice in zip(ids, aux, strict=True):
        if fields.model is not None and voice.info.model != fields.model:
            raise InputError(FIELD, f"voice {voice_id!r} was stored under model set {voice.info.model!r}, the "
                                    f"request speaks with {fields.model!r}: timbres average within one set",
                             STATUS_OTHER_MODEL)  # fmt: skip
        ge = voice.features["ge"]
        if ge.size != main["ge"].size:
            raise InputError(FIELD, f"voice {voice_id!r} has a timbre vector (ge) of {ge.size} values, the request's "
                                    f"voice {main['ge'].size}: it was stored while another model was served",
                             STATUS_OTHER_MODEL)  # fmt: skip
        ges.append(ge)
    voice = with_mean_ge(main, ges)
    return dataclasses.replace(fields, prompt_text=None, prompt_language=None, reference_audio=None, voice=voice)
