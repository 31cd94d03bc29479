"""The public ``voice_clone`` model: a BLS orchestrator over bert, ssl, vq_encode, ref_encoder, t2s, sovits_decode.

Why BLS and not an ensemble: the number of sentence pieces varies per request, BERT runs only for zh segments,
references are cached, and decoding loops over pieces; an ensemble is a fixed DAG of one call per step.
The orchestration itself is :class:`~gsv_triton.backend.pipeline.VoiceClonePipeline`; this module only
moves tensors in and out and turns errors into per-request Triton errors. The request's deadline (a request
parameter the gateway sets) and its cancellation stop the work between steps, in ``t2s`` between tokens.

Config parameters: ``default_cut_punc`` (api.py's ``-cp``, default empty: split at newlines only),
``reference_cache_size``, ``prompt_cache_size``, ``warmup_languages`` (comma-separated; the text frontend runs
once per language at load time so no request pays the dictionary loading). Limits come from ``GSV_*`` environment variables
(``gsv_triton.settings.Settings().limits``) of the server process.
"""

from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils

from gsv_triton.backend.cancel import cancel_watch
from gsv_triton.backend.ort_session import model_parameters
from gsv_triton.backend.pipeline import VoiceClonePipeline
from gsv_triton.backend.requests import VoiceCloneRequest, parse_request, requested_set
from gsv_triton.contract import VOICE_CLONE
from gsv_triton.settings import Settings

from .triton_io import bls_pipeline, guarded, request_inputs, request_stop, response


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = model_parameters(args["model_config"])
        self.limits = Settings().limits
        self.default_cut_punc = params.get("default_cut_punc", "")
        self.pipelines = bls_pipeline(args, params, self.limits)
        self.logger = pb_utils.Logger

    def execute(self, requests: list) -> list:
        return [guarded("voice_clone", self.logger, self._run, r) for r in requests]

    def _parse(self, request) -> tuple[VoiceClonePipeline, VoiceCloneRequest]:
        """The pipeline of the model set the request names and its validated inputs (shared with
        ``voice_clone_stream``, which subclasses this model)."""
        inputs = request_inputs(request, VOICE_CLONE.input_names)
        pipeline = self.pipelines.get(requested_set(inputs))
        return pipeline, parse_request(inputs, pipeline.config.symbol_version, self.limits, self.default_cut_punc)

    def _run(self, request):
        pipeline, parsed = self._parse(request)
        with cancel_watch(request_stop(request), request.is_cancelled) as stop:
            result = pipeline.synthesize(parsed, stop)
        return response(
            {
                "audio": result.audio.astype(np.float32),
                "sample_rate": np.array([result.sample_rate], dtype=np.int32),
                "segment_tokens": result.segment_tokens.astype(np.int32),
                "semantic_tokens": result.tokens,
                "used_seed": np.array([result.seed], dtype=np.uint64).view(np.int64),
            }
        )
