"""Optional bearer API keys on a real uvicorn (Triton down: authentication is decided before any of it)."""

from __future__ import annotations

import httpx
import pytest

from gsv_gateway.auth import key_matches
from gsv_gateway.server import BackgroundGateway
from gsv_triton.server import free_port
from gsv_triton.settings import Settings

KEYS = ("first-key", "second-key")


def _settings(tmp_path, api_keys: str) -> Settings:
    return Settings(triton_url=f"127.0.0.1:{free_port()}", voice_dir=tmp_path / "voices", api_keys=api_keys)


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    with BackgroundGateway(_settings(tmp_path_factory.mktemp("auth"), " first-key, second-key ,")) as gateway:
        yield gateway


def test_protected_routes_need_a_valid_bearer_key(locked) -> None:
    for method, path in (("GET", "/v1/voices"), ("GET", "/v1/models"), ("POST", "/v1/voice-clone"),
                         ("POST", "/v1/audio/speech"), ("GET", "/"), ("GET", "/change_refer")):  # fmt: skip
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "first-key"},
                        {"Authorization": "Basic Zmlyc3Qta2V5"}):  # fmt: skip
            response = httpx.request(method, f"{locked.url}{path}", headers={**headers, "X-Request-ID": "auth-1"})
            assert response.status_code == 401, (method, path, headers, response.text)
            body = response.json()
            assert body["field"] == "authorization" and body["detail"].startswith("authorization: ")
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.headers["x-request-id"] == body["request_id"] == "auth-1"
    for key in KEYS:
        for scheme in ("Bearer", "bearer"):
            ok = httpx.get(f"{locked.url}/v1/voices", headers={"Authorization": f"{scheme} {key}"})
            assert ok.status_code == 200 and ok.json() == {"voices": []}


def test_health_metrics_and_docs_stay_open(locked) -> None:
    assert httpx.get(f"{locked.url}/health").status_code == 503  # open: Triton is down, not 401
    for path in ("/metrics", "/openapi.json", "/docs"):
        assert httpx.get(f"{locked.url}{path}").status_code == 200, path
    metrics = httpx.get(f"{locked.url}/metrics").text
    assert 'status="401"' in metrics


def test_without_keys_the_gateway_is_open(tmp_path) -> None:
    with BackgroundGateway(_settings(tmp_path, "")) as gateway:
        assert httpx.get(f"{gateway.url}/v1/voices").status_code == 200
        assert httpx.get(f"{gateway.url}/v1/models").status_code == 200


def test_key_matching_is_exact() -> None:
    keys = frozenset({b"abc", b"def"})
    assert key_matches(b"abc", keys) and key_matches(b"def", keys)
    assert not key_matches(b"ab", keys) and not key_matches(b"abcd", keys) and not key_matches(b"", keys)
