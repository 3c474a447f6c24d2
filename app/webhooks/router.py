"""/v1/webhooks: a tenant's receivers of job and study events, and what was sent to each."""
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from app.db import SQL_BIGINT_MAX
from app.deps import CurrentTenant, SessionDep
from app.openapi import errors
from app.webhooks import service
from app.webhooks.schemas import DeliveryPage, WebhookCreate, WebhookCreated, WebhookPage, WebhookRead

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=SQL_BIGINT_MAX)]


@router.post("", status_code=201, response_model=WebhookCreated)
def create_webhook(tenant: CurrentTenant, request: WebhookCreate, db: SessionDep):
    """A receiver for the named events; the signing secret is in this answer only. Deliveries follow
    Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature) and are retried for a day."""
    hook = service.create(db_session=db, tenant_id=tenant, request=request)
    return WebhookCreated(**WebhookRead.model_validate(hook).model_dump(), secret=hook.secret)


@router.get("", response_model=WebhookPage)
def list_webhooks(db: SessionDep, tenant: CurrentTenant, limit: Limit = 50, offset: Offset = 0):
    """The tenant's webhooks, newest first; never a secret."""
    rows, total = service.list_page(db_session=db, tenant_id=tenant, limit=limit, offset=offset)
    return WebhookPage(items=rows, total=total, limit=limit, offset=offset)


@router.delete("/{webhook_id}", status_code=204, responses=errors(404))
def delete_webhook(webhook_id: str, db: SessionDep, tenant: CurrentTenant):
    """Deletes the webhook and its deliveries: pending ones are not sent."""
    service.delete(db_session=db, tenant_id=tenant, webhook_id=webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryPage, responses=errors(404))
def list_deliveries(webhook_id: str, db: SessionDep, tenant: CurrentTenant, limit: Limit = 50, offset: Offset = 0,
                    status: Literal["pending", "delivered", "failed"] | None = None):
    """The webhook's deliveries, newest first: status, attempts, the receiver's last status code, next try."""
    rows, total = service.deliveries(db_session=db, tenant_id=tenant, webhook_id=webhook_id, status=status,
                                     limit=limit, offset=offset)
    return DeliveryPage(items=rows, total=total, limit=limit, offset=offset)
