"""gsv_gateway: the FastAPI gateway in front of the Triton voice_clone pipeline.

``create_app(settings)`` builds the app; ``gsv-triton gateway`` (:mod:`gsv_gateway.cli`) serves it with uvicorn.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gsv-triton")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
