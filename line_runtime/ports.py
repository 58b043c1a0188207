"""Free TCP ports on 127.0.0.1 for servers a process starts itself (the worker's per-process metrics, the harness's
broker, store, control plane).

A port is free only until someone binds it. Asked one at a time, the OS may hand the same free port out twice in a
row (it did: two SeaweedFS components on one port, and weed exited at start), so every port a caller needs at once
comes from one `free_ports` call, which holds all its sockets open until it has them all.
"""

from __future__ import annotations

import socket
from typing import Collection


def free_ports(count: int, avoid: Collection[int] = ()) -> list[int]:
    """`count` distinct ports, free on 127.0.0.1 right now, none of them in `avoid` (ports the caller already holds)."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket()
            held.append(sock)
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            if port not in avoid:
                ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports
