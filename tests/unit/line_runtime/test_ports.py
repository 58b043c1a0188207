"""Free ports picked together are distinct, avoid the caller's own, and can be bound."""

from __future__ import annotations

import socket

import pytest

from line_runtime.ports import free_ports


def test_ports_picked_together_are_distinct_and_bindable():
    # 500 single picks from ~28k ephemeral ports repeat one with probability ~99 % (birthday bound);
    # picked together they cannot.
    ports = free_ports(500)
    assert len(ports) == 500 and len(set(ports)) == 500
    for port in ports[:20]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_ports_the_caller_holds_are_never_handed_out():
    held = set(free_ports(3000))
    fresh = free_ports(300, avoid=held)
    assert len(set(fresh)) == 300 and not held & set(fresh)


def test_a_listening_port_is_not_picked():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        assert busy not in free_ports(2000)


def test_zero_ports_and_a_negative_count():
    assert free_ports(0) == []
    with pytest.raises(ValueError, match="count must be >= 0, got -1"):
        free_ports(-1)
