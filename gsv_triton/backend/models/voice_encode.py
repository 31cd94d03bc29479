"""The ``voice_encode`` model: the reference side of a voice (prompt phones + BERT, prompt codes, ge), once.

The gateway's voice library stores these outputs and sends them back to ``voice_clone`` as its optional
``prompt_phone_ids``/``prompt_bert``/``prompt_codes``/``ge`` inputs, which skip the prompt's text frontend,
``ssl``, ``vq_encode`` and ``ref_encoder``. The work is :meth:`VoiceClonePipeline.encode_voice`, the same code
``voice_clone`` runs for an uploaded clip, so both paths give the same audio.
"""

from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils

from gsv_triton.backend.ort_session import model_parameters
from gsv_triton.backend.requests import parse_voice_request, requested_set
from gsv_triton.contract import VOICE_ENCODE
from gsv_triton.settings import Settings

from .triton_io import bls_pipeline, guarded, request_inputs, response


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = model_parameters(args["model_config"])
        self.limits = Settings().limits
        # No caches: every voice is encoded once, and voice_clone keeps its own.
        self.pipelines = bls_pipeline(args, params, self.limits, reference_cache=False, prompt_cache=False)
        self.logger = pb_utils.Logger

    def execute(self, requests: list) -> list:
        return [guarded("voice_encode", self.logger, self._run, r) for r in requests]

    def _run(self, request):
        inputs = request_inputs(request, VOICE_ENCODE.input_names)
        pipeline = self.pipelines.get(requested_set(inputs))
        parsed = parse_voice_request(inputs, pipeline.config.symbol_version, self.limits)
        prompt, reference = pipeline.encode_voice(parsed)
        return response(
            {
                "prompt_phone_ids": prompt.phone_ids.astype(np.int64),
                "prompt_bert": prompt.bert.astype(np.float32),
                "prompt_codes": reference.prompt_codes.astype(np.int64),
                "ge": reference.ge.astype(np.float32).ravel(),
                "reference_seconds": np.array([reference.seconds], dtype=np.float32),
            }
        )
