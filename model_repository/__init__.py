"""The Triton model templates, installed as the package ``gsv_export.model_templates`` (see pyproject.toml).

This file only makes the folder a package, so ``importlib.resources`` finds the templates in a regular and in an
editable install alike; the templates are data, read by ``gsv_export.triton_repository``.
"""
