"""How close one rendering of audio is to another: the signal-to-noise ratio every quality gate states."""

from __future__ import annotations

import numpy as np


def snr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """10 log10(energy of ``reference`` / energy of ``candidate - reference``), in float64; inf when equal."""
    reference = np.asarray(reference, np.float64).ravel()
    candidate = np.asarray(candidate, np.float64).ravel()
    if reference.shape != candidate.shape:
        raise ValueError(f"{candidate.size} samples against a reference of {reference.size}")
    error = float(np.sum((candidate - reference) ** 2))
    return float("inf") if error == 0 else float(10 * np.log10(float(np.sum(reference**2)) / error))
