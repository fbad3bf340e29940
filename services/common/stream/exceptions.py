"""Why the stream loop stops."""

from __future__ import annotations

from services.common.exceptions import FraudradarError


class StreamError(FraudradarError):
    """The stream loop had to stop."""


class DlqLimitExceeded(StreamError):
    """Too much poison input: stop rather than dead-letter everything after a bad deploy."""


class DeliveryFailed(StreamError):
    """The broker did not acknowledge outputs; offsets were not committed."""


class Crc32cMissing(StreamError):
    """kafka-python would fall back to pure-Python CRC32C, about 10x slower."""


class RejoinStalled(StreamError):
    """The group took its partitions away and never handed any back (kafka-python 3.0.x can stall
    in a rejoin); the service exits so its supervisor (Kubernetes, the reliability rig) restarts it."""

