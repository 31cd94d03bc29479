"""The web page (``/ui/``) in a real browser: headless Chromium driven by Playwright, against a real gateway
process and a real tritonserver (tiny models).

What a person does there: open the gateway's address, load or record a clip, type, synthesize and listen (the
audio streams in, then plays from an audio element with the same samples the JSON contract gives for the same
seeded request), read the server's errors next to their fields, keep voices in the library, and work with API
keys on. Screenshots of each state go to build/ui-screenshots/.
"""

from __future__ import annotations

import base64
import re

import httpx
import numpy as np
import pytest
from browser_fixtures import blob_bytes, open_page, screenshot, shown_result, synthesize, wav_samples
from gateway_fixtures import start_gateway
from playwright.sync_api import Page

from gsv_triton.settings import OUTPUT_SAMPLE_RATE

pytestmark = pytest.mark.slow

API_KEY = "page-test-key"
PROMPT = "参考音频文字"
TEXT = "你好，这是第一句。这是第二句话，还有一点。最后是第三句！"
CUT = "，。！"
SEED = 9
TIMEOUT_S = 120.0
TIMING = re.compile(r"^\d+ ms$|^\d+\.\d\d s$")
RECORD_MS = 3600  # longer than the 3 s a reference needs


@pytest.fixture(scope="module")
def gateway(triton_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("page_gateway")
    running = start_gateway(
        triton_server.grpc_url, workdir, ["--max-new-tokens", "40"], env={"GSV_VOICE_DIR": str(workdir / "voices")}
    )
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def keyed_gateway(triton_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("page_keyed_gateway")
    env = {"GSV_API_KEYS": API_KEY, "GSV_VOICE_DIR": str(workdir / "voices")}
    running = start_gateway(triton_server.grpc_url, workdir, ["--max-new-tokens", "40"], env=env)
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def reference_file(reference_audio, tmp_path_factory):
    path = tmp_path_factory.mktemp("page_files") / "reference.wav"
    path.write_bytes(reference_audio(1))
    return path


def fill_clip(page: Page, clip) -> None:
    page.set_input_files("#audio", clip)
    page.fill("#prompt_text", PROMPT)
    page.select_option("#prompt_language", "zh")


def fill_text(page: Page, text: str = TEXT) -> None:
    page.fill("#text", text)
    page.select_option("#text_language", "zh")
    page.fill("#seed", str(SEED))
    page.fill("#cut_punc", CUT)


def field_error(page: Page, field: str) -> str:
    """The message shown next to ``field``, once it is visible."""
    locator = page.locator(f'[data-error-for="{field}"]')
    locator.wait_for(state="visible", timeout=TIMEOUT_S * 1000)
    return locator.inner_text()


def json_contract_audio(url: str, reference: bytes | None = None, **fields) -> tuple[np.ndarray, float]:
    """/v1/voice-clone's answer for the page's request: its samples and its output_duration."""
    data = {"text": TEXT, "text_language": "zh", "seed": str(SEED), "cut_punc": CUT, **fields}
    if reference is not None:
        data |= {"prompt_text": PROMPT, "prompt_language": "zh"}
    files = {"audio": ("reference.wav", reference)} if reference is not None else None
    answer = httpx.post(f"{url}/v1/voice-clone", data=data, files=files, timeout=TIMEOUT_S)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    samples, rate = wav_samples(base64.b64decode(body["output_audio_base64"]))
    assert rate == OUTPUT_SAMPLE_RATE
    return samples, body["output_duration"]


def test_a_synthesis_streams_shows_its_times_and_equals_the_json_contract(gateway, page, reference_file) -> None:
    open_page(page, gateway.url)
    fill_clip(page, reference_file)
    fill_text(page)
    synthesize(page)

    samples, duration = shown_result(page)
    expected, expected_duration = json_contract_audio(gateway.url, reference_file.read_bytes())
    np.testing.assert_array_equal(samples, expected)
    assert duration == pytest.approx(expected_duration, abs=1e-3)
    assert page.inner_text("#audio-length") == f"{expected_duration:.2f} s"
    assert page.inner_text("#used-seed") == str(SEED)
    # All of it went to the speakers piece by piece while it streamed (Web Audio), not only after the end.
    played_s = float(page.get_attribute("#audio-length", "data-played-s"))
    assert played_s == pytest.approx(expected_duration, abs=1e-3)

    # Both times are shown; the first audio came while the rest was still being made (five sentence pieces).
    first, total = page.inner_text("#first-audio"), page.inner_text("#total-time")
    assert TIMING.match(first) and TIMING.match(total), (first, total)
    first_ms = float(page.get_attribute("#first-audio", "data-ms"))
    total_ms = float(page.get_attribute("#total-time", "data-ms"))
    assert 0 < first_ms < total_ms

    download = page.locator("#download")
    assert download.is_visible() and download.get_attribute("href").startswith("blob:")
    assert download.get_attribute("download") == f"gsv-triton-seed{SEED}.wav"
    # The waveform: the canvas has drawn columns across its width, not only the axis line.
    drawn = page.evaluate("""(() => {
        const canvas = document.getElementById('waveform');
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < pixels.length; i += 4) painted += pixels[i] > 0;
        return painted / (canvas.width * canvas.height);
    })()""")
    assert drawn > 0.05, drawn
    screenshot(page, "synthesized")


def test_bad_inputs_show_the_server_message_next_to_their_field(gateway, page, reference_file) -> None:
    open_page(page, gateway.url)
    not_audio = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"this is not audio " * 100}
    fill_clip(page, not_audio)
    fill_text(page)
    page.click("#synthesize")
    shown = field_error(page, "audio")
    server = httpx.post(f"{gateway.url}/v1/voice-clone/stream",
                        data={"text": TEXT, "text_language": "zh", "prompt_text": PROMPT, "prompt_language": "zh"},
                        files={"audio": ("notes.txt", not_audio["buffer"])}, timeout=TIMEOUT_S)  # fmt: skip
    assert server.status_code == 415 and shown == server.json()["detail"]
    assert "invalid" in page.get_attribute("#audio", "class")
    assert page.inner_text("#message").startswith("415: audio: ")
    screenshot(page, "error-not-audio")

    fill_clip(page, reference_file)
    page.fill("#text", "")
    page.click("#synthesize")
    assert field_error(page, "text") == "text: is required"
    assert page.locator('[data-error-for="audio"]').is_hidden()  # the earlier error is gone
    screenshot(page, "error-empty-text")

    # The page and the server go on: the same form with a text synthesizes.
    fill_text(page)
    synthesize(page)
    assert page.locator('[data-error-for="text"]').is_hidden()


def test_the_voice_library_creates_lists_after_a_reload_uses_and_deletes(gateway, page, reference_file) -> None:
    open_page(page, gateway.url)
    assert page.locator("#voices-empty").is_visible()
    fill_clip(page, reference_file)
    page.fill("#name", "Page voice")
    page.click("#save-voice-button")
    row = page.locator("#voices tbody tr", has_text="Page voice")
    row.wait_for(timeout=TIMEOUT_S * 1000)
    voice_id = row.get_attribute("data-voice-id")
    assert re.fullmatch(r"voice_[0-9a-f]{16}", voice_id)
    assert row.locator("td").nth(1).inner_text() == "default"  # its model set

    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    row = page.locator("#voices tbody tr", has_text="Page voice")
    assert row.count() == 1 and row.get_attribute("data-voice-id") == voice_id

    row.get_by_role("button", name="Use").click()
    assert page.locator("#voice-mode").is_visible() and page.locator("#clip-mode").is_hidden()
    assert page.inner_text("#voice-id") == voice_id
    assert page.locator("#model").is_disabled() and page.input_value("#model") == "default"
    fill_text(page)
    synthesize(page)
    samples, _ = shown_result(page)
    expected, _ = json_contract_audio(gateway.url, voice_id=voice_id)
    np.testing.assert_array_equal(samples, expected)
    screenshot(page, "library")

    delete = row.get_by_role("button", name="Delete")
    delete.click()
    assert delete.inner_text() == "Confirm delete"
    delete.click()
    page.locator(f'#voices tbody tr[data-voice-id="{voice_id}"]').wait_for(state="detached")
    assert httpx.get(f"{gateway.url}/v1/voices/{voice_id}").status_code == 404
    assert page.locator("#clip-mode").is_visible()  # the voice in use is gone: back to a clip


def test_a_clip_recorded_from_the_microphone_is_sent_as_wav_and_speaks(gateway, page) -> None:
    open_page(page, gateway.url)
    page.click("#record")
    page.wait_for_selector("#record:has-text('Stop recording')")
    page.wait_for_timeout(RECORD_MS)
    page.click("#record")
    page.wait_for_selector("#record-status:has-text('recorded')")
    assert page.evaluate("document.getElementById('audio').files[0].name") == "recording.wav"
    clip, rate = wav_samples(blob_bytes(page, "URL.createObjectURL(document.getElementById('audio').files[0])"))
    assert 3.0 < clip.size / rate < 4.5, clip.size / rate
    assert np.abs(clip).max() > 1000  # Chromium's fake microphone plays a tone: not silence
    page.fill("#prompt_text", PROMPT)
    fill_text(page)
    synthesize(page)
    samples, duration = shown_result(page)
    assert samples.size > 0 and duration > 0
    screenshot(page, "recorded")


def test_with_api_keys_the_page_asks_for_the_key_and_keeps_it_in_the_tab(keyed_gateway, page, reference_file) -> None:
    open_page(page, keyed_gateway.url)
    assert page.locator("#key-form").is_visible()
    assert field_error(page, "authorization").startswith("authorization: a valid API key is required")

    page.fill("#authorization", "not-the-key")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector('[data-error-for="authorization"]:has-text("the API key is not valid")')
    assert field_error(page, "authorization") == "authorization: the API key is not valid"
    screenshot(page, "api-key-wrong")

    page.fill("#authorization", API_KEY)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#message:has-text('The key is accepted')")
    assert page.locator('[data-error-for="authorization"]').is_hidden()
    assert page.locator("#model option").all_inner_texts() == ["default (default), loaded"]
    fill_clip(page, reference_file)
    fill_text(page)
    synthesize(page)
    assert page.inner_text("#used-seed") == str(SEED)
    screenshot(page, "api-key")

    # Kept in this tab's session storage only: no local storage, no cookie; a reload keeps it.
    storage = page.evaluate("[sessionStorage.getItem('gsv-triton.api-key'), localStorage.length, document.cookie]")
    assert storage == [API_KEY, 0, ""]
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.input_value("#authorization") == API_KEY
    assert page.locator('[data-error-for="authorization"]').is_hidden()
