"""Helpers for tests that start real servers on loopback."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(
    url: str, process: subprocess.Popen[bytes], what: str, seconds: float = 60
) -> None:
    """Poll `url` until it answers 200; fail clearly if the process dies or time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, f"{what} exited"
        assert time.monotonic() < deadline, f"{what} did not start within {seconds:.0f} s"
        time.sleep(0.3)
