"""Errors of the ingest service."""

from services.common.exceptions import FraudradarError


class IngestError(FraudradarError):
    """Base of ingest errors."""


class PushAuthError(IngestError):
    """A batch push came without a valid token for its operator."""
