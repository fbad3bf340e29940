"""Webhook subscriptions. The URL is checked against SSRF here and again before each send;
the signing secret is returned once and stored only sealed with the disclosure key."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from services.api.deps import ServiceDep, WebhooksAuth
from services.api.errors import ERRORS_WITH_404
from services.api.exceptions import Conflict, NotFound
from services.api.partner_state import DeliveryCursor, Webhook
from services.api.partners import Partner
from services.api.schemas import WebhookCreated, WebhookIn, WebhookList, WebhookOut
from services.api.service import ApiService
from services.api.store import now_iso
from services.api.webhooks import UrlPolicy, new_secret

router = APIRouter(tags=["webhooks"], responses=ERRORS_WITH_404)
WebhookId = Annotated[str, Path(pattern=r"^wh_[A-Za-z0-9_-]{16,40}$")]


def _out(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.webhook_id,
        "url": hook.url,
        "events": hook.events,
        "createdAt": hook.created_at,
        "description": hook.description,
    }


@router.post(
    "/v1/webhooks",
    response_model=WebhookCreated,
    status_code=201,
    response_model_exclude_none=True,
    summary="Register a webhook (Standard Webhooks signatures)",
)
async def create_webhook(*, body: WebhookIn, principal: WebhooksAuth, service: ServiceDep) -> Any:
    partner = principal.partner
    # Registrations still being written count too: parallel requests cannot pass the cap.
    pending = service.webhooks_pending
    if len(service.pstate.webhooks.get(partner.id, {})) + pending.get(partner.id, 0) >= service.settings.webhooks_max:
        raise Conflict("Too many webhooks registered.")
    pending[partner.id] = pending.get(partner.id, 0) + 1
    try:
        return await _create(body, partner, service)
    finally:
        pending[partner.id] -= 1
        if not pending[partner.id]:
            del pending[partner.id]


async def _create(body: WebhookIn, partner: Partner, service: ApiService) -> Any:
    policy = UrlPolicy(service.settings.webhook_allow_http, service.settings.webhook_allow_private)
    await policy.resolve(body.url)
    webhook_id = "wh_" + secrets.token_urlsafe(18)
    secret = new_secret()
    hook = Webhook(
        partner=partner.id,
        webhook_id=webhook_id,
        url=body.url,
        events=sorted(set(body.events)),
        secret_enc=service.seal_webhook_secret(secret, webhook_id),
        created_at=now_iso(),
        description=body.description,
    )
    # Start from what is materialised now: a new webhook is not sent history.
    await service.put_state(DeliveryCursor(webhook_id, dict(service.positions)))
    await service.put_state(hook)
    return {**_out(hook), "secret": secret}


@router.get(
    "/v1/webhooks", response_model=WebhookList, response_model_exclude_none=True, summary="List your webhooks"
)
async def list_webhooks(*, principal: WebhooksAuth, service: ServiceDep) -> Any:
    hooks = sorted(service.pstate.webhooks.get(principal.partner.id, {}).values(), key=lambda h: h.created_at)
    return {"webhooks": [_out(h) for h in hooks]}


@router.get(
    "/v1/webhooks/{webhook_id}",
    response_model=WebhookOut,
    response_model_exclude_none=True,
    summary="One webhook",
)
async def get_webhook(*, webhook_id: WebhookId, principal: WebhooksAuth, service: ServiceDep) -> Any:
    hook = service.pstate.webhooks.get(principal.partner.id, {}).get(webhook_id)
    if hook is None:
        raise NotFound("No such webhook.")
    return _out(hook)


@router.delete(
    "/v1/webhooks/{webhook_id}", status_code=204, response_class=Response, summary="Remove a webhook"
)
async def delete_webhook(*, webhook_id: WebhookId, principal: WebhooksAuth, service: ServiceDep) -> Response:
    if webhook_id not in service.pstate.webhooks.get(principal.partner.id, {}):
        raise NotFound("No such webhook.")
    await service.delete_state(f"webhook:{principal.partner.id}:{webhook_id}")
    await service.delete_state(f"cursor:{webhook_id}")
    return Response(status_code=204)
