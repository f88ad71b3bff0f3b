"""The relay as an attacker on the network sees it: the node's public port
speaks TLS only and serves nobody without the instance's relay key, and the
engine itself cannot be reached from anywhere but the node's loopback."""

from __future__ import annotations

import http.client
import json
import socket

import pytest
from helpers import MODEL, wait_until

from inventiv_agent.config import own_address

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def public_address() -> str:
    """This machine's address toward the outside (not loopback)."""
    address = own_address("192.0.2.1")
    assert not address.startswith("127."), "the tests need a non-loopback address"
    return address


@pytest.fixture
def exposed_agent(start_agent, ports):
    """An agent whose relay listens on the machine's routable address, as on
    a cloud node, once it serves."""
    host = public_address()
    agent = start_agent(relay_host=host, relay_port=ports.take(host))

    def serving() -> bool:
        try:
            return agent.relay("GET", "/v1/models", timeout=1)[0] == 200
        except OSError:
            return False

    wait_until(serving, 15, "the engine served through the relay")
    return agent


def test_requests_without_the_relay_key_are_refused(exposed_agent):
    for key in (None, "", "rk_wrong", "rk_" + "d4e5f6" * 7 + "x"):
        status, body = exposed_agent.relay("POST", "/v1/chat/completions", key=key, body=CHAT)
        assert status == 401, f"key {key!r}: {status}"
        assert json.loads(body)["error"]["code"] == "relay_unauthorized"
        status, _ = exposed_agent.relay("GET", "/metrics", key=key)
        assert status == 401
    status, body = exposed_agent.relay("POST", "/v1/chat/completions", body=CHAT)
    assert status == 200, body
    assert json.loads(body)["choices"][0]["message"]["content"]


def test_the_agent_log_is_read_through_the_relay_with_the_key_only(exposed_agent):
    """The control plane's log viewer: /agent/logs is the agent's /logs, for
    the relay key; the worker token is not needed, a wrong key is refused."""
    status, body = exposed_agent.relay("GET", "/agent/logs?tail=3")
    assert status == 200, body
    events = json.loads(body)["events"]
    assert 0 < len(events) <= 3
    assert all("ts" in e and "event" in e for e in events)
    for key in (None, "rk_wrong"):
        status, body = exposed_agent.relay("GET", "/agent/logs?tail=3", key=key)
        assert status == 401, f"key {key!r}: {status}"
        assert json.loads(body)["error"]["code"] == "relay_unauthorized"
    # The agent itself checks the key too: reached without the relay, it
    # takes the key (never sent in clear by the control plane) or the token.
    assert exposed_agent.get("/logs?tail=1", token=None)[0] == 401
    assert exposed_agent.get("/logs?tail=1")[0] == 200


def test_streaming_goes_through_the_relay(exposed_agent):
    status, body = exposed_agent.relay(
        "POST", "/v1/chat/completions", body={**CHAT, "max_tokens": 8, "stream": True}
    )
    assert status == 200
    events = [line for line in body.decode().splitlines() if line.startswith("data: ")]
    assert len(events) > 2
    assert events[-1] == "data: [DONE]"


def test_plain_http_on_the_public_port_gets_no_answer(exposed_agent):
    conn = http.client.HTTPConnection(
        exposed_agent.cfg["relay_host"], exposed_agent.cfg["relay_port"], timeout=5
    )
    try:
        conn.request("POST", "/v1/chat/completions", body=json.dumps(CHAT))
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            status = conn.getresponse().status
            raise AssertionError(f"plain HTTP was answered {status}")
    finally:
        conn.close()


def test_the_engine_is_not_reachable_from_a_routable_address(exposed_agent):
    host = exposed_agent.cfg["relay_host"]
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.settimeout(2)
        s.connect((host, exposed_agent.cfg["engine_port"]))
    # The engine answers on loopback only, where the relay and the agent are.
    with socket.socket() as s:
        s.settimeout(2)
        s.connect(("127.0.0.1", exposed_agent.cfg["engine_port"]))
