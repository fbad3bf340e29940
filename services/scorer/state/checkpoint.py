"""The models' checkpoint: a signed, compressed pickle of one partition's models and progress.

Signed with a key derived from the pseudonym key (``state.modellog.sign``): a forged changelog
record must not be able to make the scorer unpickle arbitrary objects.
"""

from __future__ import annotations

import pickle
import zlib
from typing import Any

from services.scorer.state.modellog import sign, verified

CHECKPOINT_FORMAT = 1
# what ``load`` may raise for a blob that cannot be used (besides ``CheckpointError``)
UNUSABLE = (zlib.error, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError)


def dump(signing_key: bytes, **fields: Any) -> bytes:
    """Signed, compressed snapshot of ``fields`` (the models, feedback offset, sweep schedule...)."""
    payload = zlib.compress(pickle.dumps({"format": CHECKPOINT_FORMAT, **fields},
                                         protocol=pickle.HIGHEST_PROTOCOL), 6)
    return sign(signing_key, payload)


def load(signing_key: bytes, blob: bytes, model_version: str) -> dict[str, Any] | None:
    """The fields of a ``dump``; None when it is of another format or model version. Raises
    ``CheckpointError`` when the signature does not verify."""
    payload = verified(signing_key, blob, "model checkpoint")
    data: dict[str, Any] = pickle.loads(zlib.decompress(payload))  # noqa: S301 - verified HMAC above
    if data.get("format") != CHECKPOINT_FORMAT or data.get("model_version") != model_version:
        return None
    return data
