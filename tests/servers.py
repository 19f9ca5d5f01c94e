"""Helpers for tests that start real servers on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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


SEKMET = str(Path(sys.executable).parent / "sekmet")


class Sekmet:
    """A sekmet-fhir server process on a free loopback port."""

    def __init__(self, folder: Path, database: Path, config: Path | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/fhir"
        self.folder = folder
        self.env = {**os.environ, "SEKMET_BASE_URL": self.base_url, "SEKMET_DB": str(database)}
        if config is not None:
            self.env["SEKMET_CONFIG"] = str(config)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [SEKMET, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.folder,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_up(f"{self.base_url}/.well-known/smart-configuration", self.process, "sekmet")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def seed(self, count: int) -> None:
        subprocess.run(
            [SEKMET, "seed", "--count", str(count)],
            cwd=self.folder,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )


def seeded_sekmet(folder: Path, patients: int) -> Iterator[Sekmet]:
    """A module fixture's body: sekmet-fhir started in `folder`, seeded, stopped after."""
    server = Sekmet(folder, folder / "sekmet.db")
    try:
        server.start()
        server.seed(patients)
        yield server
    finally:
        server.stop()


JOURNEY = str(Path(sys.executable).parent / "journey")


class JourneyProcess:
    """`journey serve` or `journey worker` as its own process, killable with -9 and
    started again, with the environment a deployment would give it."""

    def __init__(self, command: str, folder: Path, env: dict[str, str]) -> None:
        self.command = command
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [JOURNEY, self.command]
        if self.command == "serve":
            args += ["--port", str(self.port)]
        with (self.folder / f"{self.command}.log").open("ab") as log:
            self.process = subprocess.Popen(
                args, env=self.env, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT
            )
        if self.command == "serve":
            wait_until_up(f"{self.url}/healthz", self.process, "journey serve")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no shutdown code runs
        self.process.wait(timeout=20)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
