"""Scale-out on one machine with real components: two tritonserver replicas behind HAProxy (Debian's, standing in
for a Kubernetes Service), two gateways sharing one voice directory, and a bounded soak (16 clients, 2 minutes,
tiny models) during which one Triton replica is killed and started again.

Holds: no unary request fails (a request on the killed replica is retried once on a fresh connection, and
HAProxy's health checks send new connections to the living replica), every answer equals the same seeded
request made alone, a voice created through one gateway is used through the other, and the restarted replica
serves again.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import READY_TIMEOUT_S
from gateway_fixtures import create_voice, start_gateway, terminate

from gsv_triton.client import synthesize
from gsv_triton.server import TritonServer, free_port

CLIENTS = 16
SOAK_S = 120.0
KILL_AT_S = 20.0
SEEDS = (1, 2, 3, 4)
TEXT = "你好，世界。"
TIMEOUT_S = 120.0
HEALTH_CHECK_MS = 300

HAPROXY_CONFIG = """\
global
    maxconn 512
defaults
    mode tcp
    timeout connect 1s
    timeout client 300s
    timeout server 300s
    retries 3
    option redispatch
frontend triton_http
    bind 127.0.0.1:{lb_http}
    default_backend http_replicas
frontend triton_grpc
    bind 127.0.0.1:{lb_grpc}
    default_backend grpc_replicas
backend http_replicas
    balance roundrobin
    option httpchk GET /v2/health/ready
    default-server inter {check_ms}ms fall 1 rise 2
{http_servers}
backend grpc_replicas
    balance roundrobin
    option httpchk GET /v2/health/ready
    default-server inter {check_ms}ms fall 1 rise 2
{grpc_servers}
"""


class Replica:
    """One tritonserver on fixed ports, so it can be killed and started again behind the load balancer."""

    def __init__(self, repo: Path, log_dir: Path, index: int) -> None:
        self.repo, self.log_dir, self.index = repo, log_dir, index
        self.ports = (free_port(), free_port(), free_port())
        self.server: TritonServer | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.server = TritonServer().start(self.repo, *self.ports,
                                           log_path=self.log_dir / f"replica{self.index}.{self.starts}.log")  # fmt: skip
        self.server.wait_ready(READY_TIMEOUT_S)

    def kill(self) -> None:
        assert self.server is not None
        self.server.kill()

    def successes(self) -> float:
        """voice_clone's successful requests so far (Triton's own counter on the metrics port)."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.ports[2]}/metrics", timeout=5).read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("nv_inference_request_success{") and 'model="voice_clone"' in line)  # fmt: skip


@pytest.fixture
def replicas(tiny_model_repository: Path, tmp_path: Path) -> Iterator[list[Replica]]:
    started = [Replica(tiny_model_repository, tmp_path, i) for i in (1, 2)]
    try:
        for replica in started:
            replica.start()
        yield started
    finally:
        for replica in started:
            if replica.server is not None:
                replica.server.stop()


@pytest.fixture
def balancer(replicas: list[Replica], tmp_path: Path) -> Iterator[tuple[str, str]]:
    """HAProxy in front of both replicas (TCP, health checks on /v2/health/ready); yields (gRPC, HTTP)."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert Path(binary).is_file(), "haproxy is missing: scripts/setup.sh installs it (apt-get install haproxy)"
    lb_http, lb_grpc = free_port(), free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(
        lb_http=lb_http, lb_grpc=lb_grpc, check_ms=HEALTH_CHECK_MS,
        http_servers="\n".join(f"    server r{r.index} 127.0.0.1:{r.ports[0]} check" for r in replicas),
        grpc_servers="\n".join(f"    server r{r.index} 127.0.0.1:{r.ports[1]} check port {r.ports[0]}"
                               for r in replicas),
    ))  # fmt: skip
    log = open(tmp_path / "haproxy.log", "wb")
    process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{lb_http}/v2/health/ready", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert process.poll() is None, (tmp_path / "haproxy.log").read_text()
                assert time.monotonic() < deadline, "haproxy did not pass requests"
                time.sleep(0.1)
        yield f"127.0.0.1:{lb_grpc}", f"127.0.0.1:{lb_http}"
    finally:
        terminate(process, 5)
        log.close()


def _clone(url: str, voice_id: str, seed: int) -> str:
    data = {"text": TEXT, "text_language": "zh", "voice_id": voice_id, "seed": str(seed), "cut_punc": "，。"}
    answer = httpx.post(f"{url}/v1/voice-clone", data=data, timeout=TIMEOUT_S)
    answer.raise_for_status()
    return answer.json()["output_audio_base64"]


@pytest.mark.slow
def test_two_replicas_one_killed_under_load(replicas, balancer, tmp_path, reference_audio) -> None:
    lb_grpc, lb_http = balancer
    voices = tmp_path / "voices"
    env = {"GSV_VOICE_DIR": str(voices), "GSV_MAX_NEW_TOKENS": "20"}
    gateways = [start_gateway(lb_grpc, tmp_path, env=env, triton_http_url=lb_http) for _ in range(2)]
    try:
        created = create_voice(gateways[0].url, reference_audio(2))
        assert created.status_code == 201, created.text
        voice_id = created.json()["id"]  # created through the first gateway, used through both
        expected = {seed: _clone(gateways[1].url, voice_id, seed) for seed in SEEDS}
        assert len(set(expected.values())) == len(SEEDS)

        outcomes: Counter[str] = Counter()
        lock = threading.Lock()
        stop_at = time.monotonic() + SOAK_S

        def client(number: int) -> None:
            i = 0
            while time.monotonic() < stop_at:
                seed = SEEDS[(number + i) % len(SEEDS)]
                url = gateways[(number + i) % 2].url
                try:
                    outcome = "same" if _clone(url, voice_id, seed) == expected[seed] else "different"
                except httpx.HTTPStatusError as exc:
                    outcome = f"failed: {exc.response.status_code} {exc.response.text[:300]}"
                except httpx.HTTPError as exc:
                    outcome = f"failed: {exc!r}"[:300]
                with lock:
                    outcomes[outcome] += 1
                i += 1

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(KILL_AT_S)
        replicas[0].kill()  # SIGKILL to the server and its stubs, requests in flight on it included
        killed = time.monotonic()
        replicas[0].start()  # on the same ports: HAProxy's checks take it back once it is ready
        restart_s = time.monotonic() - killed
        for thread in threads:
            thread.join(SOAK_S + TIMEOUT_S)
        retried = sum(log.log_text().count("retrying once") for log in gateways)
        print(f"\nscale-out soak: {sum(outcomes.values())} requests in {SOAK_S:g} s from {CLIENTS} clients, "
              f"{dict(outcomes)}; replica 1 killed at {KILL_AT_S:g} s and ready again {restart_s:.1f} s later; "
              f"{retried} requests retried once on a fresh connection")  # fmt: skip

        assert outcomes["same"] > CLIENTS and set(outcomes) == {"same"}, dict(outcomes)
        # The balancer took the restarted replica back: new connections reach it again (the gateways' kept-alive
        # connections stay where they are, as behind any layer-4 balancer).
        for seed in SEEDS:  # gsv_triton.client opens one connection per call: round robin
            synthesize(lb_http, "http", text=TEXT, reference_audio=reference_audio(2), prompt_text="参考音频文字",
                       seed=seed, max_new_tokens=20)  # fmt: skip
        assert replicas[0].successes() > 0 and replicas[1].successes() > 0
    finally:
        for gateway in gateways:
            gateway.stop()
