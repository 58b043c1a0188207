"""Read the broker's socket in large pieces.

kafka-python 3.0 reads every connection with `sock.recv(4096)` in a Python loop on its network
thread. A worker fetching 512x512 PNG frames (~190 KB each) at a few hundred frames per second
receives 50-100 MB/s: 12,000-25,000 loop turns a second, each holding the GIL the decode threads
and the batcher need. `install()` reads up to RECV_BYTES per call instead, with the same
semantics (read until the socket would block; empty read = the broker closed it; any other error
closes the connection). Measured in docs/performance.md ("Socket reads").

kafka-python internals are used read-only and checked by tests/unit/worker/test_socket_reads.py.
"""

from __future__ import annotations

import logging

import kafka.errors as Errors
from kafka.net.transport import KafkaTCPTransport

log = logging.getLogger(__name__)

# Large enough that a 4 MiB fetch response takes a handful of calls, small enough that a read of a
# nearly idle socket does not allocate much (recv allocates the full size, then shrinks it).
RECV_BYTES = 1 << 20

_ORIGINAL = KafkaTCPTransport._sock_recv


def install() -> None:
    """Make every plain-TCP Kafka connection of this process read RECV_BYTES at a time (idempotent).

    TLS connections are untouched: KafkaSSLTransport has its own reader (an SSL socket hands out at
    most one 16 KiB TLS record per call anyway).
    """
    KafkaTCPTransport._sock_recv = _sock_recv_large


def uninstall() -> None:
    """Restore kafka-python's reader (tests)."""
    KafkaTCPTransport._sock_recv = _ORIGINAL


def _sock_recv_large(self):
    received = []
    err = None
    while True:
        try:
            data = self._sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            break
        except BaseException as exc:  # noqa: BLE001 - as kafka-python: any socket error closes the connection
            log.exception("%s: error receiving network data, closing the socket", self)
            err = Errors.KafkaConnectionError(exc)
            break
        if not data:
            log.error("%s: socket disconnected", self)
            err = Errors.KafkaConnectionError("socket disconnected")
            break
        received.append(data)
        if len(data) < RECV_BYTES:  # the kernel buffer is drained: skip the read that would only raise
            break
    return b"".join(received), err
