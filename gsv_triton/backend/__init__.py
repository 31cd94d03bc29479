"""Code that runs inside Triton's Python stub: the models, the orchestration and the runtimes.

* ``models/``: the ``TritonPythonModel`` classes (``model_repository/<model>/1/model.py`` re-exports them);
  only they and ``models/triton_io.py`` import ``triton_python_backend_utils``.
* ``requests.py``: parsing and validation of the public models' inputs (no Triton import).
* ``pipeline.py``: the voice-cloning orchestration over named network calls; ``ort_backend.py`` runs the
  same networks in-process (tests, benchmarks); ``cache.py`` its reference and prompt caches.
* ``t2s/``: the GPT's autoregressive loop, the sampler, the torch runner and the continuous-batching engine.
* ``ort_session.py``, ``torch_device.py``, ``torch_networks.py``: onnxruntime sessions and the torch runtime.
"""
