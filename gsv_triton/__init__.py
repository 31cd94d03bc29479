"""gsv-triton: code shared by the exporter, the Triton models and the gateway."""

__version__ = "0.1.0"
