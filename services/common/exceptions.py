"""The root of every exception fraudradar raises on purpose.

Each subpackage roots its own ``exceptions.py`` in ``FraudradarError`` so callers can catch
one family (``except IngestError``) or everything the project raises on purpose.
"""


class FraudradarError(Exception):
    """Base of all fraudradar errors."""


class ConfigError(FraudradarError):
    """Configuration is missing or inconsistent (bad key file, unknown setting)."""
