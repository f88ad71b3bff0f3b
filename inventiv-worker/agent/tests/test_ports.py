"""The tests' port holder: what it hands out is the kernel's choice, held, so
no two processes of a test are given the same port (the cause of the old
"engine port ... collides with 'agent_port'" flake)."""

from __future__ import annotations

import socket

import pytest
from helpers import Ports


def test_held_ports_are_distinct_and_never_handed_out_again(ports):
    taken = {ports.take() for _ in range(20)}
    base = ports.take_range(3)
    taken |= {base, base + 1, base + 2}
    assert len(taken) == 23
    for _ in range(2000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            assert s.getsockname()[1] not in taken


def test_a_server_binding_with_reuseaddr_listens_on_a_held_port(ports):
    port = ports.take()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            conn, _ = server.accept()
            conn.close()


def test_a_held_port_refuses_an_exclusive_bind_until_released():
    held = Ports()
    port = held.take()
    with socket.socket() as s, pytest.raises(OSError):
        s.bind(("127.0.0.1", port))
    held.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
