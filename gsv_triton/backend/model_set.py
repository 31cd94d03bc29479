"""The orchestrators' view of model sets: one :class:`VoiceClonePipeline` per set a request names.

A set's pipeline runs its own networks under their Triton names (:class:`SetBackend`) with its own manifest
(version, widths, text frontend) and its own caches: a reference's codes and ``ge`` come from the set's SoVITS,
so a cached reference never crosses sets. Pipelines are made on a set's first request, from the manifest as it
is then, so a set exported while the server runs is found without a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from gsv_triton.backend.cancel import NEVER, StopSignal
from gsv_triton.backend.pipeline import Backend, PipelineConfig, VoiceClonePipeline
from gsv_triton.errors import InputError
from gsv_triton.manifest import Manifest
from gsv_triton.model_sets import DEFAULT_SET, MODEL_FIELD, network_model


class SetBackend:
    """``backend`` with the set's own networks (t2s, vq_encode, ref_encoder, sovits_decode) under its names."""

    def __init__(self, backend: Backend, model_set: str) -> None:
        self.backend = backend
        self.model_set = model_set

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str],
              stop: StopSignal = NEVER) -> dict[str, np.ndarray]:  # fmt: skip
        return self.backend.infer(network_model(model, self.model_set), inputs, outputs, stop)


class SetPipelines:
    """The pipelines of ``repo``'s model sets, each made on first use by ``make(backend, config)``."""

    def __init__(self, repo: Path, backend: Backend,
                 make: Callable[[Backend, PipelineConfig], VoiceClonePipeline]) -> None:  # fmt: skip
        self.repo = Path(repo)
        self.backend = backend
        self.make = make
        self._pipelines: dict[str, VoiceClonePipeline] = {}
        self._lock = threading.Lock()

    def get(self, model_set: str) -> VoiceClonePipeline:
        """``model_set``'s pipeline; 404 naming the sets there are when the repository has no such set."""
        with self._lock:
            pipeline = self._pipelines.get(model_set)
            if pipeline is None:
                sets = Manifest.read_sets(self.repo)  # read again: the set may have been exported since start
                if model_set not in sets:
                    raise InputError(MODEL_FIELD, f"unknown model set {model_set!r}; this server has: "
                                     f"{', '.join(sorted(sets))}", status=404)  # fmt: skip
                config = PipelineConfig.from_manifest(sets[model_set])
                pipeline = self._pipelines[model_set] = self.make(SetBackend(self.backend, model_set), config)
            return pipeline

    def first(self) -> VoiceClonePipeline:
        """The default set's pipeline (a repository started with a named set: its first set's), for warm-up."""
        sets = Manifest.read_sets(self.repo)
        return self.get(DEFAULT_SET if DEFAULT_SET in sets else next(iter(sets)))
