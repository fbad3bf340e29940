"""The histograms' pickles: every slot of the class hierarchy, in a pinned byte format.

The scorer's checkpoints pickle the models, and the models hold these histograms; the bytes of a
histogram's pickle are part of the checkpoint format (services/scorer/state/checkpoint.py), so a
change to them needs a new checkpoint format, not a silent drift.
"""

from __future__ import annotations

import hashlib
import pickle

import pytest

from models.histogram import LogHistogram, SignedLogHistogram

# sha256 of the protocol-5 pickle of ``_filled(cls)`` (what ``CHECKPOINT_FORMAT`` 's pickles hold).
PINNED = {
    LogHistogram: "6aca0a359f9570c68009432a00e0ef07a46d2c7e1c1a3488516c79df4ac2d71b",
    SignedLogHistogram: "266f76facb6628c2253ac1ee59fe0bea87bf61f8b444cf381a79ddc2138f3cf7",
}


def _filled(cls: type[LogHistogram] | type[SignedLogHistogram]) -> LogHistogram | SignedLogHistogram:
    """A small histogram past a decay and a few refreshes (and, signed, a skewness)."""
    h = cls(n_buckets=16, decay_every=50, refresh_every=8)
    for v in range(-30, 100):
        h.update(float(v) * 1.7)
    if isinstance(h, SignedLogHistogram):
        h.skewness()
    return h


def _all_slots(cls: type) -> set[str]:
    return {name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ())}


@pytest.mark.parametrize("cls", [LogHistogram, SignedLogHistogram])
def test_the_state_holds_every_slot_of_the_hierarchy_and_a_round_trip_keeps_them(cls: type) -> None:
    h = _filled(cls)
    state = h.__getstate__()
    assert list(state) == sorted(_all_slots(cls))
    assert {"_counts", "total", "min_value"} <= set(state)          # the shared base's slots too
    clone = pickle.loads(pickle.dumps(h, protocol=5))
    for name in _all_slots(cls):
        assert getattr(clone, name) == getattr(h, name), name


@pytest.mark.parametrize("cls", [LogHistogram, SignedLogHistogram])
def test_the_pickle_bytes_are_the_checkpoint_format(cls: type) -> None:
    digest = hashlib.sha256(pickle.dumps(_filled(cls), protocol=5)).hexdigest()
    assert digest == PINNED[cls]


def test_a_clone_answers_as_the_original() -> None:
    signed = _filled(SignedLogHistogram)
    assert isinstance(signed, SignedLogHistogram)
    clone = pickle.loads(pickle.dumps(signed, protocol=5))
    for probe in (-20.0, 0.0, 3.3, 90.0):
        assert clone.both(probe) == signed.both(probe)
    assert clone.skewness() == signed.skewness()
    plain = _filled(LogHistogram)
    assert isinstance(plain, LogHistogram)
    assert pickle.loads(pickle.dumps(plain, protocol=5)).tail(50.0) == plain.tail(50.0)
