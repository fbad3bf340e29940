"""The API's domain errors; ``errors.py`` maps every one of them to the CAMARA error shape.

Each carries the HTTP status and the CAMARA code, so routes raise meaning, not HTTP.
"""

from __future__ import annotations

from services.common.exceptions import FraudradarError


class ApiError(FraudradarError):
    """An error a partner sees as ``{status, code, message}``."""

    status: int = 500
    code: str = "INTERNAL"
    default_message: str = "Internal error."

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.headers = headers or {}


class InvalidArgument(ApiError):
    status, code = 400, "INVALID_ARGUMENT"
    default_message = "Client specified an invalid argument, request body or query param."


class OutOfRange(ApiError):
    status, code = 400, "OUT_OF_RANGE"
    default_message = "Client specified an invalid range."


class Unauthenticated(ApiError):
    status, code = 401, "UNAUTHENTICATED"
    default_message = "Request not authenticated due to missing, invalid, or expired credentials."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="fraudradar"'})


class PermissionDenied(ApiError):
    status, code = 403, "PERMISSION_DENIED"
    default_message = "Client does not have sufficient permissions to perform this action."


class NotFound(ApiError):
    status, code = 404, "NOT_FOUND"
    default_message = "The specified resource is not found."


class IdentifierNotFound(ApiError):
    """A CAMARA identifier that cannot exist: a number that is impossible in the numbering plan."""

    status, code = 404, "IDENTIFIER_NOT_FOUND"
    default_message = "Device identifier not found."


class Conflict(ApiError):
    status, code = 409, "CONFLICT"
    default_message = "The resource is in a conflicting state."


class MissingIdentifier(ApiError):
    status, code = 422, "MISSING_IDENTIFIER"
    default_message = "The device cannot be identified."


class ServiceNotApplicable(ApiError):
    status, code = 422, "SERVICE_NOT_APPLICABLE"
    default_message = "The service is not available for the provided identifier."


class TooManyRequests(ApiError):
    status, code = 429, "TOO_MANY_REQUESTS"
    default_message = "Rejected due to request rate limit overpassed."

    def __init__(self, retry_after_s: int, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after_s))})


class QuotaExceeded(TooManyRequests):
    code = "QUOTA_EXCEEDED"
    default_message = "Rejected due to exceeding a business quota limit."


class Unavailable(ApiError):
    status, code = 503, "UNAVAILABLE"
    default_message = "Service unavailable: still catching up with the risk topics."


class AuditUnavailable(Unavailable):
    """The audit trail cannot take the record of this lookup, so the lookup is not answered."""

    default_message = "Service unavailable: the audit trail cannot record lookups right now."


class OAuthError(ApiError):
    """RFC 6749 token endpoint error; the body also carries ``error``/``error_description``."""

    def __init__(
        self,
        status: int,
        oauth_error: str,
        message: str,
        *,
        retry_after: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        # 429 carries the API's own codes (TOO_MANY_REQUESTS, or QUOTA_EXCEEDED for the quota).
        self.code = code or {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 429: "TOO_MANY_REQUESTS"}.get(
            status, "INVALID_ARGUMENT"
        )
        if retry_after is not None:
            self.headers = {"Retry-After": str(retry_after)}
        self.oauth_error = oauth_error
        if status == 401:
            self.headers = {"WWW-Authenticate": 'Basic realm="fraudradar"'}
