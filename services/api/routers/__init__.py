"""One router per domain of the partner API."""
