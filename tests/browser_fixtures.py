"""Helpers of the web page's tests, which drive headless Chromium (Debian's ``chromium`` package, installed by
``scripts/setup.sh``) with Playwright for Python, which downloads no browser of its own. Their ``browser`` and
``page`` fixtures are in conftest.py.

Chromium runs with a fake microphone (a generated tone) that it may use without asking, so the page's
recording path runs for real. Each test saves full-page screenshots of its states in ``build/ui-screenshots/``
for a person to look at; README's ``docs/ui.png`` is a copy of ``synthesized.png``.
"""

from __future__ import annotations

import base64
import io
import shutil
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from playwright.sync_api import Page

REPO_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT_DIR = REPO_ROOT / "build" / "ui-screenshots"
# Debian's binary itself (/usr/bin/chromium is a wrapper script), else whatever chromium is on PATH.
CHROMIUM_BINARY = Path("/usr/lib/chromium/chromium")
CHROMIUM_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
VIEWPORT = {"width": 1100, "height": 900}
POLL_S = 0.05
LOAD_TIMEOUT_S = 120.0
SYNTHESIS_TIMEOUT_S = 90.0
SAMPLE_RATE = 32_000


def chromium_path() -> str | None:
    return str(CHROMIUM_BINARY) if CHROMIUM_BINARY.is_file() else shutil.which("chromium")


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def poll(page: Page, expression: str, timeout_s: float = 30.0) -> object:
    """Evaluate ``expression`` in the page until it is truthy; its value. (Playwright's wait_for_function
    compiles its predicate with eval, which the page's Content-Security-Policy forbids.)"""
    deadline = time.monotonic() + timeout_s
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{expression!r} stayed {value!r} for {timeout_s:g} s")
        time.sleep(POLL_S)


def blob_bytes(page: Page, url_expression: str) -> bytes:
    """The bytes behind a blob: URL the page made (fetched inside the page, sent back as base64)."""
    data_url = page.evaluate(
        """async (url) => {
            const blob = await (await fetch(url)).blob();
            return await new Promise((resolve) => {
                const reader = new FileReader();
                reader.onload = () => resolve(reader.result);
                reader.readAsDataURL(blob);
            });
        }""",
        page.evaluate(url_expression),
    )
    return base64.b64decode(data_url.partition(",")[2])


def wav_samples(data: bytes) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(io.BytesIO(data), dtype="int16")
    return samples, rate


def open_page(page: Page, url: str) -> None:
    """What a person types: the gateway's address. The page has loaded its lists when body[data-ready] is set."""
    page.goto(f"{url}/")
    assert page.url == f"{url}/ui/"
    page.wait_for_selector("body[data-ready=true]", timeout=LOAD_TIMEOUT_S * 1000)


def synthesize(page: Page) -> None:
    """Press Synthesize and wait until the total time is shown (the stream has ended)."""
    page.click("#synthesize")
    page.wait_for_selector("#total-time:not([data-ms=''])", timeout=SYNTHESIS_TIMEOUT_S * 1000)


def shown_result(page: Page) -> tuple[np.ndarray, float]:
    """The result audio element's samples (the WAV behind its blob: source) and the duration Chromium decoded."""
    duration = poll(page, "(() => { const a = document.getElementById('result-audio'); "
                          "return a.readyState >= 1 && a.duration; })()")  # fmt: skip
    samples, rate = wav_samples(blob_bytes(page, "document.getElementById('result-audio').src"))
    assert rate == SAMPLE_RATE
    return samples, float(duration)
