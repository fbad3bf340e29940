"""The versioned policy file: thresholds, rules, protected numbers and the sender-ID registry.

Loaded once at start. Plaintext numbers in the file (published bank numbers) and the sender IDs
of the registry it names (``services.scorer.registry``) are normalised exactly as ingest
normalises them (``services.common.normalise``) and replaced by their pseudonyms under the
running key, so nothing plaintext stays in memory after loading.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.common.normalise import IdentifierError, normalise_number
from services.common.pseudonym import Pseudonymizer
from services.common.records import Level
from services.scorer import catalogue, registry
from services.scorer.exceptions import PolicyError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration_ms(text: str | int | float) -> int:
    """``"15m"`` → 900000; bare numbers are seconds."""
    if isinstance(text, int | float):
        return int(text * 1000)
    match = _DURATION.match(text.strip())
    if not match:
        raise PolicyError(f"not a duration: {text!r} (use e.g. 30s, 15m, 24h, 14d)")
    return int(float(match.group(1)) * _UNIT_MS[match.group(2)])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Strict):
    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]+$")
    label: str
    when: dict[str, float]
    points: float = Field(ge=0, le=100)
    max_points: float = Field(ge=0, le=100)
    saturate: float = Field(4.0, gt=1.0)
    # rules that read the same evidence (one group name) count it once: of the group's fired rules
    # only the one with the most points fuses (noisy-OR assumes independent signals)
    evidence: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")

    @field_validator("when")
    @classmethod
    def _non_empty(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("a rule needs at least one condition")
        return value

    @property
    def feature(self) -> str:
        return next(iter(self.when))


class Levels(_Strict):
    low: int = 25
    medium: int = 50
    high: int = 70
    critical: int = 85


class StateSettings(_Strict):
    ttl: str = "14d"
    grace: str = "5m"
    sweep_every: str = "15m"


class FlagSettings(_Strict):
    ttl: dict[Literal["low", "medium", "high", "critical"], str]
    cooldown: str = "24h"
    min_score_change: int = 5


class ModelSettings(_Strict):
    warmup: int = 3000
    learn_every: int = Field(2, ge=1)
    rescore_growth: float = Field(1.25, ge=1.0)
    rescore_after: str = "120s"
    min_activity: float = 3.0
    tail_start: float = Field(1e-2, gt=0, lt=1)
    points_at_start: float = 15
    points_per_decade: float = 15
    max_points: float = Field(60, ge=0, le=100)
    # a model whose score passes the cut the false-alarm budget derives (services.scorer.thresholds)
    # alerts alone (MODEL_RARE); false: models only add their capped points
    alone: bool = True
    # the evidence group (Rule.evidence) a model's capped points (MODEL_ANOMALY, below its budget
    # cut) belong to: the models read the counters that group's rules read, so with one of them
    # fired only the larger points fuse, and a rule capped below the alert level needs a signal
    # that is independent of it. A model past its cut (MODEL_RARE) is no part of it. None: the
    # model's points fuse with every rule's
    evidence: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")
    detectors: list[Literal["burst", "burst_hst", "ecod", "hst"]] = ["hst"]
    feedback_max_points: float = 40
    feedback_damping: float = Field(0.5, ge=0, le=1)
    # one partner's labels may be at most this share of all labels learned (beyond a start
    # allowance of 4 x the learner's min_each), so no single partner steers the scores
    feedback_partner_share: float = Field(0.5, gt=0, le=1)


class LinkSettings(_Strict):
    """Device → number propagation (``fraudradar.links``): numbers acting on a flagged device."""

    enabled: bool = True
    min_device_level: Literal["medium", "high", "critical"] = "high"
    max_points: int = Field(80, ge=0, le=100)   # a linked number's score: min(device score, this)
    # a number whose own one_way_share_24h is below this (its recipients answer it: at least one
    # reply or call-back per ten contacts at 0.9) does not take its device's verdict; 0: off
    two_way_below: float = Field(0.0, ge=0, le=1)
    # a number whose own stranger_share_24h is below this (it contacted recipients it had
    # contacted before: a household's, a business's circle) does not take it either; 0: off
    returning_below: float = Field(0.0, ge=0, le=1)


class RegistrySettings(_Strict):
    """The sender-ID registry (``services.scorer.registry``) and the spoofing signals it drives."""

    path: str | None = None     # relative to the policy file; None: the packaged sender_registry.csv
    protected_categories: list[str] = ["bank", "government"]
    lookalike_points: float = Field(90, ge=0, le=100)   # a look-alike of a protected sender ID
    from_sim_points: float = Field(90, ge=0, le=100)    # a protected sender ID sent from a subscriber SIM
    # categories whose senders send one-time codes (login, payment approval, app activation): SMS
    # from them after a SIM/device change are one of the account-takeover signals
    code_categories: list[str] = ["otp", "bank", "government"]


class BudgetSettings(_Strict):
    """The false-alarm budget per rule family (``services.scorer.budget``)."""

    alerts_per_100k_per_day: float = Field(1.0, gt=0)
    # the population may raise a rule's minimum evidence at most this many times
    # (``services.scorer.thresholds``): a population flooded by one pattern cannot switch its rule off
    max_scale: float = Field(4.0, ge=1.0)
    # learned points of an entity class before its cuts move from the policy's thresholds (None:
    # the models' warm-up); each fit also needs MIN_TAIL_COUNT points where it reads the tail
    warmup: int | None = Field(None, ge=0)


class PolicyFile(_Strict):
    version: str
    timezone: str = "Europe/Amsterdam"
    region: str = "NL"
    night_hours: tuple[int, int] = (0, 6)
    short_call_seconds: float = 10
    levels: Levels = Levels()
    alert_level: Literal["medium", "high", "critical"] = "high"
    state: StateSettings = StateSettings()
    flags: FlagSettings
    models: ModelSettings = ModelSettings()
    do_not_originate: list[str] = []
    do_not_originate_points: float = 95
    sender_registry: RegistrySettings = RegistrySettings()
    budget: BudgetSettings = BudgetSettings()
    modem_tacs: list[str] = []
    links: LinkSettings = LinkSettings()
    rules: dict[Literal["number", "device"], list[Rule]]


class Policy:
    """A loaded policy: the file's settings plus pseudonymised lists and durations in ms."""

    def __init__(self, spec: PolicyFile, pseudonymizer: Pseudonymizer, base: Path | None = None) -> None:
        self.spec = spec
        self.version = spec.version
        self.levels = spec.levels
        self.level_floor: dict[Level, int] = {"none": 0, "low": spec.levels.low, "medium": spec.levels.medium,
                                              "high": spec.levels.high, "critical": spec.levels.critical}
        self.alert_level: Level = spec.alert_level
        self.ttl_ms = duration_ms(spec.state.ttl)
        self.grace_ms = duration_ms(spec.state.grace)
        self.sweep_every_ms = duration_ms(spec.state.sweep_every)
        self.flag_ttl_ms: dict[str, int] = {k: duration_ms(v) for k, v in spec.flags.ttl.items()}
        self.cooldown_ms = duration_ms(spec.flags.cooldown)
        self.rescore_after_ms = duration_ms(spec.models.rescore_after)
        self.models = spec.models
        self.rules = spec.rules
        self.do_not_originate = frozenset(self._pseudonyms(pseudonymizer, spec.do_not_originate, False))
        self.modem_tacs = frozenset(int(t) for t in spec.modem_tacs if t.isdigit())
        self.senders = self._registry(pseudonymizer, base)
        # the registered A2P sender IDs: the device's a2p_in counts SMS from them
        self.a2p_registered = frozenset(self.senders.category)
        # the one-time-code senders (their registry category), for the change tail's codes
        codes = set(self.spec.sender_registry.code_categories)
        self.code_senders = frozenset(p for p, category in self.senders.category.items() if category in codes)

    def _registry(self, pseudonymizer: Pseudonymizer, base: Path | None) -> registry.RegistryIndex:
        """The sender-ID registry the policy names, pseudonymised (``base``: the policy's directory)."""
        settings = self.spec.sender_registry
        for field in ("protected_categories", "code_categories"):
            unknown = sorted(set(getattr(settings, field)) - registry.CATEGORIES)
            if unknown:
                raise PolicyError(f"sender_registry.{field}: unknown category {', '.join(unknown)}")
        try:
            if settings.path is None:
                with resources.as_file(resources.files("services.scorer").joinpath("sender_registry.csv")) as path:
                    senders = registry.load(path)
            else:
                senders = registry.load((base or Path.cwd()) / settings.path)
        except registry.RegistryError as exc:
            raise PolicyError(str(exc)) from exc

        def pseudonym(sender_id: str) -> str | None:
            try:
                number = normalise_number(sender_id, self.spec.region, allow_alphanumeric=True)
            except IdentifierError:
                return None
            return pseudonymizer("msisdn", number.value)

        try:
            return registry.index(senders, settings.protected_categories, pseudonym)
        except registry.RegistryError as exc:
            raise PolicyError(str(exc)) from exc

    def _pseudonyms(self, pseudonymizer: Pseudonymizer, texts: list[str], alphanumeric: bool) -> list[str]:
        out = []
        for text in texts:
            try:
                number = normalise_number(text, self.spec.region, allow_alphanumeric=alphanumeric)
            except IdentifierError as exc:
                raise PolicyError(f"policy list entry is not a valid number or sender ({exc.reason})") from exc
            out.append(pseudonymizer("msisdn", number.value))
        return out

    def level_of(self, score: int) -> Level:
        levels = self.levels
        if score >= levels.critical:
            return "critical"
        if score >= levels.high:
            return "high"
        if score >= levels.medium:
            return "medium"
        if score >= levels.low:
            return "low"
        return "none"

    @classmethod
    def load(cls, pseudonymizer: Pseudonymizer, path: Path | None = None) -> Policy:
        """Load ``path`` or the packaged ``policy.yaml``; raise ``PolicyError`` on any problem."""
        try:
            if path is None:
                text = resources.files("services.scorer").joinpath("policy.yaml").read_text()
            else:
                text = Path(path).read_text()
        except OSError as exc:
            raise PolicyError(f"cannot read policy file: {exc.strerror}") from exc
        try:
            raw = yaml.safe_load(text)
            spec = PolicyFile.model_validate(raw)
        except (yaml.YAMLError, ValidationError) as exc:
            raise PolicyError(f"invalid policy file: {exc}") from exc
        for entity_type, rules in spec.rules.items():
            for rule in rules:
                if rule.max_points < rule.points:
                    raise PolicyError(f"rule {entity_type}/{rule.code}: max_points below points")
                unknown = sorted(set(rule.when) - catalogue.names(entity_type))
                if unknown:
                    raise PolicyError(f"rule {entity_type}/{rule.code}: no such {entity_type} feature "
                                      f"{', '.join(unknown)} (see services/scorer/catalogue.py)")
        # a misspelt group would be a group of its own: the model's points would fuse with the
        # rules' again, the double count the setting exists to prevent
        groups = {rule.evidence for rules in spec.rules.values() for rule in rules if rule.evidence}
        if spec.models.evidence is not None and spec.models.evidence not in groups:
            raise PolicyError(f"models.evidence: no rule has the evidence group {spec.models.evidence!r} "
                              f"(groups: {', '.join(sorted(groups)) or 'none'})")
        return cls(spec, pseudonymizer, None if path is None else Path(path).parent)
