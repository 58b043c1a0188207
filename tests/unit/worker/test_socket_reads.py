"""worker.socket_reads: kafka-python's 4 KiB socket reads replaced by large ones, same semantics.

A real socket pair carries the bytes; every worker integration test (real broker) runs with the
reader installed too, since worker.parts.build_parts installs it.
"""

from __future__ import annotations

import os
import select
import socket
import threading

import kafka.errors as Errors
import pytest
from kafka.net.transport import KafkaSSLTransport, KafkaTCPTransport

from worker import socket_reads


class _CountingSocket:
    """Delegates recv to a real non-blocking socket and counts the calls."""

    def __init__(self, sock: socket.socket):
        self.sock, self.calls = sock, 0

    def recv(self, size: int) -> bytes:
        self.calls += 1
        return self.sock.recv(size)


class _Transport:
    """What _sock_recv touches on a KafkaTCPTransport: its socket (and a repr for the log lines)."""

    def __init__(self, sock):
        self._sock = sock


@pytest.fixture
def installed():
    socket_reads.install()
    yield
    socket_reads.uninstall()


def _drain(reader: _CountingSocket, transport: _Transport) -> tuple[bytes, Exception | None, int]:
    """Call the installed reader whenever the socket is readable, as kafka-python's selector does."""
    got, turns = [], 0
    while True:
        select.select([reader.sock], [], [], 5)
        data, err = KafkaTCPTransport._sock_recv(transport)
        turns += 1
        got.append(data)
        if err is not None:
            return b"".join(got), err, turns


def test_install_swaps_the_plain_tcp_reader_only(installed):
    assert KafkaTCPTransport._sock_recv is socket_reads._sock_recv_large
    # TLS keeps kafka-python's own reader: KafkaSSLTransport defines one of its own
    assert "_sock_recv" in vars(KafkaSSLTransport)
    assert KafkaSSLTransport._sock_recv is not socket_reads._sock_recv_large
    socket_reads.install()  # idempotent
    assert KafkaTCPTransport._sock_recv is socket_reads._sock_recv_large


def test_uninstall_restores_kafka_pythons_reader():
    original = KafkaTCPTransport._sock_recv
    socket_reads.install()
    socket_reads.uninstall()
    assert KafkaTCPTransport._sock_recv is original


def test_every_byte_arrives_in_order_in_far_fewer_reads_and_a_close_is_reported(installed):
    payload = os.urandom(3 * 1024 * 1024 + 17)  # a fetch response of ~16 frames, not a multiple of anything
    a, b = socket.socketpair()
    b.setblocking(False)
    reader = _CountingSocket(b)

    def send():
        a.sendall(payload)
        a.close()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        data, err, turns = _drain(reader, _Transport(reader))
    finally:
        sender.join(10)
        b.close()
    assert data == payload
    assert isinstance(err, Errors.KafkaConnectionError) and "disconnected" in str(err)
    # kafka-python's reader needs len/4096 = 769 recv calls for this payload
    assert reader.calls < len(payload) // 4096 // 4, reader.calls


def test_an_idle_socket_returns_nothing_and_no_error(installed):
    a, b = socket.socketpair()
    b.setblocking(False)
    try:
        data, err = KafkaTCPTransport._sock_recv(_Transport(b))
    finally:
        a.close()
        b.close()
    assert (data, err) == (b"", None)


def test_a_socket_error_becomes_a_connection_error(installed):
    a, b = socket.socketpair()
    a.close()
    b.close()  # recv on a closed socket raises OSError (bad file descriptor)
    data, err = KafkaTCPTransport._sock_recv(_Transport(b))
    assert data == b""
    assert isinstance(err, Errors.KafkaConnectionError)
