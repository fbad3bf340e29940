"""Errors of the ingest service and its adapters."""

from services.common.exceptions import FraudradarError


class IngestError(FraudradarError):
    """Base of ingest errors."""


class CdrImportError(IngestError):
    """Bad CDR import mapping or input (shown to the user, exit code 2)."""
