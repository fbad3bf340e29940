"""Errors the scorer raises on purpose, rooted in the project's ``FraudradarError``."""

from services.common.exceptions import FraudradarError


class ScorerError(FraudradarError):
    """Base of scorer errors."""


class PolicyError(ScorerError):
    """The policy file is missing, malformed or inconsistent."""


class CheckpointError(ScorerError):
    """A model checkpoint or state record could not be verified or decoded."""


class RestoreStalled(ScorerError):
    """A partition's state restore made no progress for ``Restorer.restore_stall_s``."""
