"""Standard Webhooks signatures (https://www.standardwebhooks.com): `whsec_` secrets,
and the webhook-id, webhook-timestamp and webhook-signature headers of a delivery."""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook

from integration.errors import IntegrationError

PREFIX = "whsec_"
# The specification asks for secrets of 24 to 64 random bytes.
SECRET_BYTES = 32


class InvalidWebhookSecret(IntegrationError):
    """A configured secret that is not `whsec_` and base64 of 24 to 64 bytes."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_secret(secret: str, where: str) -> str:
    """The secret, if it is one the specification allows; else InvalidWebhookSecret
    naming `where` (never the secret)."""
    if not secret.startswith(PREFIX):
        raise InvalidWebhookSecret(f"{where}: a webhook secret starts with {PREFIX!r}")
    try:
        key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except binascii.Error:
        raise InvalidWebhookSecret(f"{where}: not base64 after {PREFIX!r}") from None
    if not 24 <= len(key) <= 64:
        raise InvalidWebhookSecret(f"{where}: a webhook secret holds 24 to 64 bytes")
    return secret


def signed_headers(
    message_id: str, body: str, signing_secrets: Sequence[str], at: datetime
) -> dict[str, str]:
    """The headers of one delivery. With two secrets (a rotation's overlap) both
    signatures are sent, space-separated, and a receiver holding either one verifies."""
    signatures = " ".join(Webhook(secret).sign(message_id, at, body) for secret in signing_secrets)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }
