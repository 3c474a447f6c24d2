"""Webhook routes' work: create (the URL's addresses checked, the secret generated when none is given),
list, delete, and read deliveries; never another tenant's."""
from sqlalchemy.orm import Session

from app.config import get_settings
from app.errors import ApiError
from app.models import Webhook, WebhookDelivery
from app.models.base import new_id
from app.webhooks import repository, signing
from app.webhooks.addresses import RefusedUrl, check
from app.webhooks.schemas import WebhookCreate


def create(*, db_session: Session, tenant_id: str, request: WebhookCreate) -> Webhook:
    """A new webhook; 422 on url when its host resolves to an address the sender would refuse."""
    try:
        check(request.url, allow_private=get_settings().webhook_allow_private)
    except RefusedUrl as exc:
        raise ApiError(422, str(exc), "url") from None
    hook = Webhook(id=new_id("wh"), tenant_id=tenant_id, url=request.url, events=request.events,
                   secret=request.secret or signing.generate_secret())
    db_session.add(hook)
    db_session.flush()
    return hook


def get(*, db_session: Session, tenant_id: str, webhook_id: str) -> Webhook:
    hook = repository.get_for_tenant(db_session=db_session, webhook_id=webhook_id, tenant_id=tenant_id)
    if hook is None:
        raise ApiError(404, f"webhook {webhook_id} not found")
    return hook


def list_page(*, db_session: Session, tenant_id: str, limit: int, offset: int) -> tuple[list[Webhook], int]:
    return repository.page(db_session=db_session, tenant_id=tenant_id, limit=limit, offset=offset)


def delete(*, db_session: Session, tenant_id: str, webhook_id: str) -> None:
    """Deletes the webhook and its deliveries, pending ones included: nothing more is sent to it."""
    hook = get(db_session=db_session, tenant_id=tenant_id, webhook_id=webhook_id)
    repository.delete_webhook(db_session=db_session, webhook_id=hook.id)


def deliveries(*, db_session: Session, tenant_id: str, webhook_id: str, status: str | None, limit: int,
               offset: int) -> tuple[list[WebhookDelivery], int]:
    hook = get(db_session=db_session, tenant_id=tenant_id, webhook_id=webhook_id)
    return repository.deliveries_page(db_session=db_session, webhook_id=hook.id, status=status,
                                      limit=limit, offset=offset)
