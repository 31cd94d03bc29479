"""The ``voice_convert`` model: a source clip's content in a target voice (:meth:`VoiceClonePipeline.convert`).

The target is a clip (``reference_audio``) or a stored voice's ``ge``; the source's semantic codes come from
``ssl`` -> ``vq_encode`` and replace the GPT's tokens, so no ``t2s`` and no BERT run.
"""

from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils

from gsv_triton.backend.ort_session import model_parameters
from gsv_triton.backend.requests import parse_convert_request, requested_set
from gsv_triton.contract import VOICE_CONVERT
from gsv_triton.settings import Settings

from .triton_io import bls_pipeline, guarded, request_inputs, response


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = model_parameters(args["model_config"])
        self.limits = Settings().limits
        self.pipelines = bls_pipeline(args, params, self.limits, prompt_cache=False)
        self.logger = pb_utils.Logger

    def execute(self, requests: list) -> list:
        return [guarded("voice_convert", self.logger, self._run, r) for r in requests]

    def _run(self, request):
        inputs = request_inputs(request, VOICE_CONVERT.input_names)
        pipeline = self.pipelines.get(requested_set(inputs))
        parsed = parse_convert_request(inputs, pipeline.config.symbol_version, self.limits)
        audio = pipeline.convert(parsed)
        return response(
            {
                "audio": audio.astype(np.float32),
                "sample_rate": np.array([pipeline.config.sample_rate], dtype=np.int32),
                "used_seed": np.array([parsed.seed], dtype=np.uint64).view(np.int64),
            }
        )
