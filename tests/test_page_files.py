"""The web page's server side on a real uvicorn (Triton down: none of this needs it): the files under ``/ui/``
with their headers, ``/ui/config.json`` from the settings, a browser's visit to ``/`` sent to the page, and
which of these stay open with API keys on. The page itself runs in a browser in tests/test_web_page.py."""

from __future__ import annotations

import re

import httpx
import pytest

from gsv_gateway.page import STATIC_DIR
from gsv_gateway.server import BackgroundGateway
from gsv_triton.server import free_port
from gsv_triton.settings import OUTPUT_SAMPLE_RATE, SamplingDefaults, Settings
from gsv_triton.text.languages import LANGUAGES_V1, LANGUAGES_V2

API_KEY = "page-key"
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}  # what Chromium sends
MODULE_IMPORT = re.compile(r'from "\./([\w.-]+)"')


def _settings(tmp_path, **changes) -> Settings:
    return Settings(triton_url=f"127.0.0.1:{free_port()}", voice_dir=tmp_path / "voices", **changes)


@pytest.fixture(scope="module")
def open_gateway(tmp_path_factory):
    settings = _settings(tmp_path_factory.mktemp("page_open"), max_text_chars=1234, default_cut_punc="。")
    with BackgroundGateway(settings) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def locked_gateway(tmp_path_factory):
    with BackgroundGateway(_settings(tmp_path_factory.mktemp("page_locked"), api_keys=API_KEY)) as gateway:
        yield gateway


def test_every_file_the_page_loads_is_served_with_its_type_and_the_page_headers(open_gateway) -> None:
    index = httpx.get(f"{open_gateway.url}/ui/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    policy = index.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "unsafe" not in policy
    assert index.headers["x-content-type-options"] == "nosniff"
    # Everything index.html links and every module app.js imports (transitively) is there, nothing remote.
    wanted = set(re.findall(r'(?:src|href)="([\w.-]+\.(?:js|css))"', index.text))
    assert wanted == {"app.js", "style.css"}
    assert "http://" not in index.text and "https://" not in index.text
    seen: set[str] = set()
    while wanted:
        name = wanted.pop()
        seen.add(name)
        response = httpx.get(f"{open_gateway.url}/ui/{name}")
        assert response.status_code == 200, name
        kind = "text/css" if name.endswith(".css") else "javascript"  # module scripts need a JavaScript type
        assert kind in response.headers["content-type"], (name, response.headers["content-type"])
        assert "https://" not in response.text and "http://" not in response.text, name
        wanted |= set(MODULE_IMPORT.findall(response.text)) - seen
    assert seen == {p.name for p in STATIC_DIR.iterdir()} - {"index.html"}
    assert httpx.get(f"{open_gateway.url}/ui/missing.js").status_code == 404
    assert httpx.get(f"{open_gateway.url}/ui/..%2fpage.py").status_code == 404


def test_the_config_is_the_settings_and_tables_the_routes_use(open_gateway) -> None:
    config = httpx.get(f"{open_gateway.url}/ui/config.json").json()
    codes = [language["code"] for language in config["languages"]]
    assert sorted(codes) == sorted(LANGUAGES_V2) and set(LANGUAGES_V1) <= set(codes)
    assert config["default_language"] in codes
    defaults = SamplingDefaults()
    assert config["sampling"] == {"top_k": defaults.top_k, "top_p": defaults.top_p,
                                  "temperature": defaults.temperature, "speed": defaults.speed}  # fmt: skip
    assert config["max_text_chars"] == 1234 and config["cut_punc"] == "。"  # GSV_MAX_TEXT_CHARS, -cp
    assert config["sample_rate"] == OUTPUT_SAMPLE_RATE and config["api_keys_required"] is False
    assert config["default_model"] == "default"


def test_a_browser_opening_the_root_goes_to_the_page_and_api_clients_do_not(open_gateway) -> None:
    visit = httpx.get(f"{open_gateway.url}/", headers=HTML)
    assert visit.status_code == 307 and visit.headers["location"] == "ui/"
    # api.py clients: a query, or no HTML in Accept, still reach api.py's route (here: Triton is down).
    for query, headers in (("?text=hi&text_language=en", HTML), ("", {})):
        assert httpx.get(f"{open_gateway.url}/{query}", headers=headers).status_code in (400, 503)

def test_the_page_s_requests_have_their_own_metrics_labels(open_gateway) -> None:
    httpx.get(f"{open_gateway.url}/ui/app.js")
    httpx.get(f"{open_gateway.url}/ui/config.json")
    requests = [line for line in httpx.get(f"{open_gateway.url}/metrics").text.splitlines()
                if line.startswith("gsv_gateway_requests_total{")]  # fmt: skip
    for path in ("/ui/app.js", "/ui/config.json"):
        assert any(f'route="{path}"' in line and 'status="200"' in line for line in requests), (path, requests)


def test_with_api_keys_the_page_is_open_and_the_api_behind_it_is_not(locked_gateway) -> None:
    url = locked_gateway.url
    for path in ("/ui/", "/ui/app.js", "/ui/config.json"):
        assert httpx.get(f"{url}{path}").status_code == 200, path
    assert httpx.get(f"{url}/ui/config.json").json()["api_keys_required"] is True
    assert httpx.get(f"{url}/", headers=HTML).status_code == 307
    assert httpx.get(f"{url}/?text=hi&text_language=en", headers=HTML).status_code == 401
    assert httpx.post(f"{url}/", headers=HTML).status_code == 401
    assert httpx.get(f"{url}/v1/voices").status_code == 401
    assert httpx.get(f"{url}/v1/voices", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
