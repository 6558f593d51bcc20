"""TCP ports for test servers (TensorFlow workers) that no other process is handed meanwhile.

Binding port 0 and closing the socket returns a port the kernel will hand the next process that
asks for any port: between the test freeing it and the worker binding it, another connection may
take it. These ports come from below the kernel's ephemeral range (never handed out that way),
from a band of its own for each pytest-xdist worker (never chosen twice at once), and each is
checked to be free.
"""

import itertools
import os
import random
import socket

BAND = 1500


def _ephemeral_start():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _is_free(port):
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count):
    """``count`` distinct free ports on 127.0.0.1, outside the ephemeral range."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    low = _ephemeral_start() - BAND * (index + 2)
    if low < 1025:  # an unusual ephemeral range: fall back to ports the kernel picks
        return _kernel_ports(count)
    candidates = list(range(low, low + BAND))
    random.Random().shuffle(candidates)  # not the seeded global generator: other runs differ
    ports = list(itertools.islice((port for port in candidates if _is_free(port)), count))
    assert len(ports) == count, f"no {count} free ports in {low}-{low + BAND}"
    return ports


def _kernel_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
