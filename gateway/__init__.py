"""gsv_gateway: the FastAPI gateway in front of the Triton voice_clone pipeline."""
