"""The Python client's webhooks (``Client(...).webhooks``): its own module, app/client.py being long."""
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.client import Client


class Webhooks:
    """The tenant's webhooks (/v1/webhooks) and what was sent to each."""

    def __init__(self, client: "Client"):
        self.client = client

    def create(self, url: str, events: list[str], *, secret: str | None = None) -> dict:
        """A receiver of ``events`` (job.succeeded, job.failed, ...); ``secret`` in the answer is the
        signing secret (whsec_...), shown this once: generated when none is given."""
        body = {"url": url, "events": list(events), **({"secret": secret} if secret else {})}
        return self.client.request("POST", "/v1/webhooks", json=body).json()

    def list(self, *, limit: int = 50, offset: int = 0) -> dict:
        """Newest first: id, url, events, created_at; never a secret."""
        return self.client.request("GET", "/v1/webhooks", params={"limit": limit, "offset": offset}).json()

    def delete(self, webhook_id: str) -> None:
        """Deletes the webhook; its pending deliveries are not sent."""
        self.client.request("DELETE", f"/v1/webhooks/{webhook_id}")

    def deliveries(self, webhook_id: str, *, status: str | None = None, limit: int = 50, offset: int = 0) -> dict:
        """Newest first: id (the webhook-id header), event_type, status, attempts, last_status_code,
        last_error, next_attempt_at, payload. ``status``: pending, delivered or failed."""
        params = {"limit": limit, "offset": offset, **({"status": status} if status else {})}
        return self.client.request("GET", f"/v1/webhooks/{webhook_id}/deliveries", params=params).json()
