"""The Python-backend models of the Triton repository (``model_repository/<model>/1/model.py`` re-exports them).

* ``onnx_model.TritonPythonModel``: one onnxruntime session (ssl, vq_encode, ref_encoder, bert, sovits_decode).
* ``t2s_model.TritonPythonModel``: the whole autoregressive loop of the GPT in one instance.
* ``voice_clone.TritonPythonModel``: the BLS orchestrator behind the public ``voice_clone`` contract.

``request`` and ``pipeline`` hold the orchestration logic without any Triton import, so it runs (and is tested)
in-process against plain onnxruntime sessions as well. Only the three model modules import
``triton_python_backend_utils``, which exists inside Triton's Python stub alone.
"""
