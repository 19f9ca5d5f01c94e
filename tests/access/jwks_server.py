"""An OAuth issuer's JWKS endpoint on loopback, for the tests that check tokens."""

from __future__ import annotations

import threading
import time

import orjson
import uvicorn
from fastapi import FastAPI, Response

from tests.access.tokens import Issuer
from tests.servers import free_port


class JwksServer:
    """The issuer's JWKS endpoint on loopback; `down` makes it answer 503."""

    def __init__(self, issuer: Issuer) -> None:
        self.issuer = issuer
        self.down = False
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/jwks"
        app = FastAPI()

        @app.get("/jwks")
        def jwks() -> Response:
            if self.down:
                return Response(status_code=503)
            return Response(orjson.dumps(self.issuer.jwks()), media_type="application/json")

        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error")
        )

    def __enter__(self) -> JwksServer:
        threading.Thread(target=self.server.run, daemon=True).start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
