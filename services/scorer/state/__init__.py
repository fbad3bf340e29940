"""The scorer's state: one ``PartitionState`` per input partition (see ``state.partition_state``)."""

from services.scorer.state.partition_state import PartitionState
from services.scorer.state.recovery import ModelRestore
from services.scorer.state.tables import (
    COMMIT_KEY,
    COMMIT_MARKER,
    MODELS_KEY,
    EntityTable,
    StateStore,
    entity_key,
    entity_text,
)

__all__ = ["COMMIT_KEY", "COMMIT_MARKER", "MODELS_KEY", "EntityTable", "ModelRestore", "PartitionState",
           "StateStore", "entity_key", "entity_text"]
