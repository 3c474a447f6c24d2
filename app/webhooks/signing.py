"""Standard Webhooks signing: secrets (whsec_ + base64), the signed content, and a delivery's headers.

The spec (https://www.standardwebhooks.com, "Signature scheme"): the signature is HMAC-SHA256,
keyed by the secret's base64-decoded bytes, over "{webhook-id}.{webhook-timestamp}.{body}",
sent as "v1,<base64 signature>" in webhook-signature. The secret is 24 to 64 random bytes.
"""
import base64
import binascii
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
MIN_BYTES, MAX_BYTES = 24, 64


def generate_secret() -> str:
    """A new secret: 32 random bytes (256 bits), as whsec_ + base64."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key a secret stands for; ValueError (saying what a secret must be) when it is not one."""
    if not secret.startswith(PREFIX):
        raise ValueError(f"must be '{PREFIX}' followed by base64 of {MIN_BYTES} to {MAX_BYTES} random bytes "
                         "(Standard Webhooks); leave it out to have one generated")
    try:
        encoded = secret[len(PREFIX):]
        # Unpadded base64 is taken too, as the spec's own libraries take it.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the part after '{PREFIX}' is not valid base64") from None
    if not MIN_BYTES <= len(key) <= MAX_BYTES:
        raise ValueError(f"must decode to {MIN_BYTES} to {MAX_BYTES} bytes, got {len(key)}")
    return key


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature value: "v1," + base64(HMAC-SHA256(key, id.timestamp.body))."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one attempt: the same webhook-id on every retry, this attempt's timestamp."""
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body),
            "content-type": "application/json", "user-agent": "Trainyard-Webhooks/1"}
