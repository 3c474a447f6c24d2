"""The queries behind the webhook routes: a tenant's webhooks and a webhook's deliveries."""
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.models import Webhook, WebhookDelivery


def get_for_tenant(*, db_session: Session, webhook_id: str, tenant_id: str) -> Webhook | None:
    return db_session.scalar(select(Webhook).where(Webhook.id == webhook_id, Webhook.tenant_id == tenant_id))


def page(*, db_session: Session, tenant_id: str, limit: int, offset: int) -> tuple[list[Webhook], int]:
    """The tenant's webhooks, newest first."""
    where = Webhook.tenant_id == tenant_id
    total = db_session.scalar(select(func.count()).select_from(Webhook).where(where))
    rows = db_session.scalars(select(Webhook).where(where).order_by(Webhook.created_at.desc(), Webhook.id)
                              .limit(limit).offset(offset)).all()
    return list(rows), total


def deliveries_page(*, db_session: Session, webhook_id: str, status: str | None, limit: int,
                    offset: int) -> tuple[list[WebhookDelivery], int]:
    """A webhook's deliveries, newest first (optionally of one status)."""
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    total = db_session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db_session.scalars(query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
                              .limit(limit).offset(offset)).all()
    return list(rows), total


def delete_webhook(*, db_session: Session, webhook_id: str) -> None:
    """The webhook and its deliveries: a pending one is never sent (the sender's record finds no row)."""
    db_session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id))
    db_session.execute(delete(Webhook).where(Webhook.id == webhook_id))
