"""OAuth2 token endpoint (client credentials; secret or private_key_jwt) and key discovery."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
from typing import Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request

from services.api.deps import LimiterDep, TokensDep
from services.api.errors import OAuthErrorInfo
from services.api.exceptions import ApiError, OAuthError
from services.api.limits import AuthFailures, AuthLanes
from services.api.metrics import RATE_LIMITED
from services.api.schemas import Jwks, TokenOut
from services.api.tokens import CLIENT_AUTH_FAILED

router = APIRouter(tags=["oauth2"])

_FORM_FIELDS = (
    "grant_type",
    "client_id",
    "client_secret",
    "scope",
    "purpose",
    "client_assertion_type",
    "client_assertion",
)
_TOKEN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
                        "scope": {
                            "type": "string",
                            "description": "space-separated subset of the client's scopes",
                        },
                        "purpose": {
                            "type": "string",
                            "description": "the one declared purpose, e.g. dpv:FraudPreventionAndDetection",
                        },
                        "client_assertion_type": {
                            "type": "string",
                            "enum": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"],
                        },
                        "client_assertion": {"type": "string", "description": "private_key_jwt (RFC 7523)"},
                    },
                }
            }
        },
    },
}
_ERR = {"model": OAuthErrorInfo}


def _form(body: bytes) -> dict[str, str]:
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError(400, "invalid_request", "body must be application/x-www-form-urlencoded") from exc
    form: dict[str, str] = {}
    for name, values in parsed.items():
        if name not in _FORM_FIELDS:
            continue
        if len(values) != 1:
            raise OAuthError(400, "invalid_request", f"parameter {name} is repeated")
        form[name] = values[0]
    return form


def _basic(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError(401, "invalid_client", "malformed Basic credentials") from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError(401, "invalid_client", "malformed Basic credentials")
    return unquote(client_id), unquote(secret)


@router.post(
    "/oauth2/token",
    response_model=TokenOut,
    openapi_extra=_TOKEN_BODY,
    summary="Get an access token (OAuth2 client credentials)",
    responses={400: _ERR, 401: _ERR, 413: _ERR, 429: _ERR, 500: _ERR},
)
async def issue_token(*, request: Request, tokens: TokensDep, limiter: LimiterDep) -> TokenOut:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise OAuthError(400, "invalid_request", "body must be application/x-www-form-urlencoded")
    form = _form(await request.body())
    if form.get("grant_type") != "client_credentials":
        raise OAuthError(400, "unsupported_grant_type", "only grant_type=client_credentials is supported")
    basic_id, basic_secret = _basic(request.headers.get("authorization"))
    if basic_id is not None and ("client_secret" in form or "client_assertion" in form):
        raise OAuthError(400, "invalid_request", "use exactly one client authentication method")
    client_id = basic_id or form.get("client_id")
    # Failed attempts have buckets of their own (per source address, per claimed client id):
    # an empty bucket answers 429 before any secret is checked, the same for known and
    # unknown ids. The partner's own rate limit and quota are charged only once it has
    # authenticated, so nobody who merely knows a client id can spend them.
    failures: AuthFailures = request.app.state.auth_failures
    source = request.client.host if request.client else "-"
    wait = failures.retry_after(source, client_id)
    if wait is not None:
        RATE_LIMITED.labels("-", "auth_failures").inc()
        raise OAuthError(429, "slow_down", "Too many failed client authentications; retry later.", retry_after=wait)
    secret = basic_secret if basic_id is not None else form.get("client_secret")
    check = functools.partial(
        tokens.authenticate_client,
        client_id=client_id,
        client_secret=secret,
        assertion_type=form.get("client_assertion_type"),
        assertion=form.get("client_assertion"),
    )
    try:
        if secret is not None and not tokens.needs_secret_check(client_id, form.get("client_assertion")):
            # an unknown id: no scrypt, the same wait and the same answer as a wrong secret
            await asyncio.sleep(tokens.unknown_client_delay_s)
            raise OAuthError(401, "invalid_client", CLIENT_AUTH_FAILED)
        # scrypt is deliberately slow: off the event loop, in one of two lanes. Sources that
        # authenticated this client before have their own threads, so a flood of guesses
        # (which shares one thread) never queues a partner's own token request.
        lanes: AuthLanes = request.app.state.auth_lanes
        lane = lanes.trusted if failures.trusted(source, client_id) else lanes.untrusted
        partner = await asyncio.get_running_loop().run_in_executor(lane, check)
    except OAuthError as exc:
        if exc.status == 401:
            failures.failed(source, client_id)
        raise
    failures.succeeded(source, partner.id)
    request.state.partner_id = partner.id
    try:
        limiter.admit(partner)
    except ApiError as exc:
        retry = int((exc.headers or {}).get("Retry-After", "1"))
        raise OAuthError(429, "slow_down", exc.message, retry_after=retry, code=exc.code) from exc
    token, principal = tokens.issue(partner, form.get("scope"), form.get("purpose"))
    return TokenOut(
        access_token=token,
        expires_in=tokens.ttl_s,
        scope=" ".join(sorted(principal.scopes)),
        purpose=principal.purpose,
    )


@router.get("/oauth2/jwks.json", response_model=Jwks, summary="Public keys that sign access tokens")
@router.get("/.well-known/jwks.json", response_model=Jwks, include_in_schema=False)
async def jwks(*, tokens: TokensDep) -> dict[str, Any]:
    return tokens.jwks()


@router.get("/.well-known/oauth-authorization-server", include_in_schema=False)
async def metadata(*, request: Request, tokens: TokensDep) -> dict[str, Any]:
    # The public URL comes from the settings, never from the request's Host header.
    base = request.app.state.settings.public_url.rstrip("/")
    return {
        "issuer": tokens.issuer,
        "token_endpoint": f"{base}/oauth2/token",
        "jwks_uri": f"{base}/oauth2/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA"],
    }
