"""The Python-backend models of the Triton repository (``model_repository/<model>/1/model.py`` re-exports them).

* ``onnx_model``: one network session (ssl, vq_encode, ref_encoder, bert, sovits_decode).
* ``t2s_model`` / ``t2s_engine_model``: the GPT's whole loop in one instance / shared by concurrent requests.
* ``voice_clone``, ``voice_clone_stream``, ``voice_convert``, ``voice_encode``: the public BLS orchestrators.
"""
