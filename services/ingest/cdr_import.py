"""``fraudradar import-cdr``: map a telco's own CSV export onto the raw event contract.

    fraudradar import-cdr FILE.csv --mapping MAP.yaml --out events.jsonl [--json]

The mapping (YAML) names the columns, the timestamp format and time zone, and the codes the
telco uses for record types and directions. A field is given as a column name, as
``{column: NAME, values: {CODE: VALUE}, default: VALUE}`` or as ``{constant: VALUE}``; ``default``
fills empty cells, a ``"*"`` code catches every code not listed (otherwise an unknown code rejects the row).
See ``services/ingest/samples/cdr_mapping.yaml`` for a complete example; live call signalling
(``call_state`` rows: call id, step, presented CLI, international route, forwarding, duration on
the ended step) maps the same way from its own section
(``services/ingest/samples/call_state_mapping.yaml``).

Every mapped row then goes through the ingest decoder and identifier normalisation (the code
``fraudradar validate`` and the ingest service run), so a row written to ``--out`` is a row
ingest accepts. Rows that do not map are reported with a stable reason and the line number,
never written. Exit codes: 0 every row mapped, 1 some rows rejected, 2 unreadable input or mapping.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import yaml

from services.common.pseudonym import Key, Pseudonymizer
from services.ingest.decode import load_schema
from services.ingest.exceptions import CdrImportError

# Reasons of the mapping step (ingest's own codes — INVALID_NUMBER, ... — follow after it).
UNMAPPED_VALUE = "UNMAPPED_VALUE"      # a code (type, direction, change...) absent from the mapping
MISSING_FIELD = "MISSING_FIELD"        # a mapped column is empty or absent in the row
BAD_TIMESTAMP = "BAD_TIMESTAMP"        # the timestamp does not match the declared format
WRONG_TYPE = "WRONG_TYPE"              # a number or boolean column holds something else

_FIELDS_TOP = ("event_id", "a_number", "b_number", "imei", "imsi", "cell_id")
_BOOL_TEXT = {"1": True, "0": False, "true": True, "false": False, "yes": True, "no": False, "y": True, "n": False,
              "j": True, "ja": True, "nee": False}


class RowError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class FieldSpec:
    column: str | None = None
    values: Mapping[str, Any] | None = None
    default: Any = None
    constant: Any = None
    required: bool = True

    @classmethod
    def parse(cls, name: str, spec: Any) -> FieldSpec:
        if isinstance(spec, str):
            return cls(column=spec)
        if isinstance(spec, dict):
            unknown = set(spec) - {"column", "values", "default", "constant", "required"}
            if unknown:
                raise CdrImportError(f"mapping field {name}: unknown keys {sorted(unknown)}")
            if "constant" in spec:
                return cls(constant=spec["constant"])
            if "column" not in spec:
                raise CdrImportError(f"mapping field {name}: needs 'column' or 'constant'")
            values = spec.get("values")
            if values is not None and not isinstance(values, dict):
                raise CdrImportError(f"mapping field {name}: 'values' must be a mapping of codes")
            return cls(column=str(spec["column"]), default=spec.get("default"),
                       values={str(k): v for k, v in values.items()} if values else None,
                       required=bool(spec.get("required", True)))
        if isinstance(spec, (int, float, bool)):
            return cls(constant=spec)
        raise CdrImportError(f"mapping field {name}: give a column name, {{column: ...}} or {{constant: ...}}")

    def get(self, row: Mapping[str, str], name: str) -> Any:
        if self.constant is not None:
            return self.constant
        assert self.column is not None
        raw = (row.get(self.column) or "").strip()
        if raw == "":
            if self.default is not None:
                return self.default
            if self.required:
                raise RowError(MISSING_FIELD, f"{name}: column {self.column!r} is empty")
            return None
        if self.values is not None:
            if raw in self.values:
                return self.values[raw]
            if "*" in self.values:   # explicit catch-all for the codes not listed
                return self.values["*"]
            raise RowError(UNMAPPED_VALUE, f"{name}: code {raw[:40]!r} in column {self.column!r} is not in the mapping")
        return raw


@dataclass
class CdrMapping:
    operator: FieldSpec
    timestamp_column: str
    timestamp_format: str
    timezone: ZoneInfo
    type: FieldSpec
    direction: FieldSpec | None
    top: dict[str, FieldSpec]
    sms: dict[str, FieldSpec]
    call: dict[str, FieldSpec]
    sim: dict[str, FieldSpec]
    call_state: dict[str, FieldSpec] = field(default_factory=dict)
    delimiter: str = ","
    encoding: str = "utf-8"
    region: str = "NL"
    headers: list[str] = field(default_factory=list)
    forwarding: dict[str, FieldSpec] = field(default_factory=dict)
    subscription: dict[str, FieldSpec] = field(default_factory=dict)


def load_mapping(path: Path) -> CdrMapping:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CdrImportError(f"cannot read mapping {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CdrImportError(f"mapping {path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise CdrImportError(f"mapping {path} must be a YAML mapping")
    try:
        ts = doc["timestamp"]
        tz_name = str(ts.get("timezone", "UTC"))
        try:
            tz = ZoneInfo(tz_name)
        except ZoneInfoNotFoundError as exc:
            raise CdrImportError(f"mapping: unknown time zone {tz_name!r}") from exc
        sections = {s: {k: FieldSpec.parse(f"{s}.{k}", v) for k, v in (doc.get(s) or {}).items()}
                    for s in ("sms", "call", "sim", "forwarding", "subscription", "call_state")}
        top = {k: FieldSpec.parse(k, v) for k, v in (doc.get("columns") or {}).items()}
        unknown = set(top) - set(_FIELDS_TOP)
        if unknown:
            raise CdrImportError(f"mapping columns: unknown contract fields {sorted(unknown)}")
        for name in ("imei", "imsi", "cell_id", "b_number"):
            if name in top and top[name].column is not None:
                top[name] = FieldSpec(column=top[name].column, values=top[name].values, default=top[name].default,
                                      required=False)
        return CdrMapping(
            operator=FieldSpec.parse("operator", doc["operator"]),
            timestamp_column=str(ts["column"]), timestamp_format=str(ts.get("format", "iso")), timezone=tz,
            type=FieldSpec.parse("type", doc["type"]),
            direction=FieldSpec.parse("direction", doc["direction"]) if doc.get("direction") else None,
            top=top, sms=sections["sms"], call=sections["call"], sim=sections["sim"], call_state=sections["call_state"],
            delimiter=str(doc.get("delimiter", ",")), encoding=str(doc.get("encoding", "utf-8")),
            region=str(doc.get("region", "NL")),
            forwarding=sections["forwarding"], subscription=sections["subscription"],
        )
    except KeyError as exc:
        raise CdrImportError(f"mapping {path}: missing required key {exc.args[0]!r}") from exc
    except (AttributeError, TypeError) as exc:
        raise CdrImportError(f"mapping {path}: malformed ({exc})") from exc


def _timestamp(text: str, fmt: str, tz: ZoneInfo) -> str:
    try:
        if fmt == "epoch_s":
            moment = datetime.fromtimestamp(float(text), tz=UTC)
        elif fmt == "epoch_ms":
            moment = datetime.fromtimestamp(float(text) / 1000, tz=UTC)
        elif fmt == "iso":
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        else:
            moment = datetime.strptime(text, fmt)  # noqa: DTZ007 - zone applied below
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
    except (ValueError, OverflowError, OSError) as exc:
        raise RowError(BAD_TIMESTAMP, f"timestamp {text[:40]!r} does not match format {fmt!r}") from exc
    return moment.isoformat(timespec="milliseconds")


def _as_int(value: Any, name: str) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError) as exc:
        raise RowError(WRONG_TYPE, f"{name}: {str(value)[:40]!r} is not a number") from exc


def _as_float(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise RowError(WRONG_TYPE, f"{name}: {str(value)[:40]!r} is not a number") from exc


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _BOOL_TEXT:
        return _BOOL_TEXT[text]
    raise RowError(WRONG_TYPE, f"{name}: {str(value)[:40]!r} is not a yes/no value")


_TYPES: tuple[str, ...] = tuple(load_schema()["properties"]["type"]["enum"])


def map_row(row: Mapping[str, str], mapping: CdrMapping, row_number: int, source: str) -> dict[str, Any]:
    """One CSV row → a raw contract event (before ingest's own checks). Raises ``RowError``."""
    operator = str(mapping.operator.get(row, "operator"))
    etype = str(mapping.type.get(row, "type"))
    if etype not in _TYPES:
        raise RowError(UNMAPPED_VALUE, f"type maps to {etype!r}, not one of {', '.join(_TYPES)}")
    ts_raw = (row.get(mapping.timestamp_column) or "").strip()
    if not ts_raw:
        raise RowError(MISSING_FIELD, f"timestamp column {mapping.timestamp_column!r} is empty")
    event: dict[str, Any] = {"schema_version": 1}
    event_id_spec = mapping.top.get("event_id")
    event["event_id"] = (str(event_id_spec.get(row, "event_id")) if event_id_spec
                         else f"{operator}-{source}-{row_number}")
    event["operator"] = operator
    event["type"] = etype
    event["occurred_at"] = _timestamp(ts_raw, mapping.timestamp_format, mapping.timezone)
    if etype in ("sms", "call", "call_state"):
        for name in ("a_number", "b_number"):
            spec = mapping.top.get(name)
            if spec is None:
                raise RowError(MISSING_FIELD, f"{name} is not mapped")
            value = spec.get(row, name)
            if value is None:
                raise RowError(MISSING_FIELD, f"{name}: column {spec.column!r} is empty")
            event[name] = str(value)
        if mapping.direction is not None:
            direction = str(mapping.direction.get(row, "direction"))
            if direction not in ("mo", "mt"):
                raise RowError(UNMAPPED_VALUE, f"direction maps to {direction!r}, not mo or mt")
            event["direction"] = direction
    for name in ("imei", "imsi", "cell_id"):
        spec = mapping.top.get(name)
        if spec is not None and (value := spec.get(row, name)) is not None:
            event[name] = str(value)
    if etype == "sms":
        s = mapping.sms
        event["sms"] = {
            "segments": _as_int(s["segments"].get(row, "sms.segments"), "sms.segments") if "segments" in s else 1,
            "has_url": _as_bool(s["has_url"].get(row, "sms.has_url"), "sms.has_url") if "has_url" in s else False,
            "chars": _as_int(s["chars"].get(row, "sms.chars"), "sms.chars") if "chars" in s else 0,
        }
    elif etype == "call":
        c = mapping.call
        if "duration_s" not in c:
            raise RowError(MISSING_FIELD, "call.duration_s is not mapped")
        duration = _as_float(c["duration_s"].get(row, "call.duration_s"), "call.duration_s")
        answered = (_as_bool(c["answered"].get(row, "call.answered"), "call.answered") if "answered" in c
                    else duration > 0)
        event["call"] = {"duration_s": int(duration) if duration.is_integer() else duration, "answered": answered}
    elif etype in ("forwarding", "subscription"):
        event[etype] = _line_section(row, etype, mapping.forwarding if etype == "forwarding" else mapping.subscription)
    elif etype == "call_state":
        event["call_state"] = _call_state(row, mapping.call_state)
    else:
        m = mapping.sim
        if "change" not in m or "msisdn" not in m:
            raise RowError(MISSING_FIELD, "sim.change and sim.msisdn must be mapped for sim rows")
        sim: dict[str, Any] = {"change": str(m["change"].get(row, "sim.change")),
                               "msisdn": str(m["msisdn"].get(row, "sim.msisdn"))}
        for name in ("imsi", "imei"):
            if name in m:
                spec = m[name]
                optional = FieldSpec(spec.column, spec.values, spec.default, spec.constant, required=False)
                if (value := optional.get(row, f"sim.{name}")) is not None:
                    sim[name] = str(value)
        event["sim"] = sim
    return event


# the contract's fields of a forwarding / subscription event: required ones, then optional ones
_LINE_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "forwarding": (("action", "kind", "msisdn"), ()),
    "subscription": (("change", "msisdn"), ("contract",)),
}


def _line_section(row: Mapping[str, str], etype: str, specs: dict[str, FieldSpec]) -> dict[str, Any]:
    """The ``forwarding`` or ``subscription`` object of a row (its values are checked by ingest)."""
    required, optional = _LINE_FIELDS[etype]
    missing = [name for name in required if name not in specs]
    if missing:
        raise RowError(MISSING_FIELD, f"{etype}.{', '.join(missing)} must be mapped for {etype} rows")
    out: dict[str, Any] = {name: str(specs[name].get(row, f"{etype}.{name}")) for name in required}
    for name in optional:
        if name in specs:
            spec = specs[name]
            loose = FieldSpec(spec.column, spec.values, spec.default, spec.constant, required=False)
            if (value := loose.get(row, f"{etype}.{name}")) is not None:
                out[name] = str(value)
    return out


def _call_state(row: Mapping[str, str], c: dict[str, FieldSpec]) -> dict[str, Any]:
    """The ``call_state`` object of a signalling row: call id and step required, the rest optional."""
    if "call_id" not in c or "state" not in c:
        raise RowError(MISSING_FIELD, "call_state.call_id and call_state.state must be mapped for call_state rows")
    out: dict[str, Any] = {"call_id": str(c["call_id"].get(row, "call_state.call_id")),
                           "state": str(c["state"].get(row, "call_state.state"))}
    for name in ("presented_cli", "international", "forwarded", "duration_s"):
        if name not in c:
            continue
        spec = c[name]
        optional = FieldSpec(spec.column, spec.values, spec.default, spec.constant, required=False)
        value = optional.get(row, f"call_state.{name}")
        if value is None:
            continue
        if name in ("international", "forwarded"):
            out[name] = _as_bool(value, f"call_state.{name}")
        elif name == "duration_s":
            if out["state"] == "ended":   # the live steps carry no duration (an export often writes 0)
                seconds = _as_float(value, "call_state.duration_s")
                out[name] = int(seconds) if seconds.is_integer() else seconds
        else:
            out[name] = str(value)
    return out


@dataclass
class ImportSummary:
    mapped: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"valid": self.mapped, "invalid": sum(self.rejected.values()),
                "reasons": dict(sorted(self.rejected.items()))}


def _rows(path: Path, mapping: CdrMapping) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        fh = path.open("r", encoding=mapping.encoding, newline="")
    except OSError as exc:
        raise CdrImportError(f"cannot read {path}: {exc.strerror}") from exc
    with fh:
        reader = csv.DictReader(fh, delimiter=mapping.delimiter)
        if not reader.fieldnames:
            raise CdrImportError(f"{path} has no header row")
        for row in reader:
            yield reader.line_num, row


def import_cdr(csv_path: Path, mapping: CdrMapping, out_path: Path, show: int = 10) -> ImportSummary:
    from services.ingest.pipeline import IngestLimits, IngestPipeline
    from services.ingest.transform import Transformer

    # The ingest checks need no real key: pseudonyms are computed and thrown away.
    pipeline = IngestPipeline(Transformer(Pseudonymizer(Key("import", b"\0" * 32), cache_size=4096), None,
                                          mapping.region), IngestLimits(dedupe_window=100_000))
    summary = ImportSummary()
    source = csv_path.stem
    tmp = out_path.with_name(out_path.name + ".part")
    with tmp.open("wb") as out:
        for line_num, row in _rows(csv_path, mapping):
            try:
                raw = orjson.dumps(map_row(row, mapping, line_num, source))
            except RowError as exc:
                reason, detail = exc.reason, exc.detail
            else:
                result = pipeline.process(raw, now_ms=None)
                if result.ok:
                    out.write(raw + b"\n")
                    summary.mapped += 1
                    continue
                reason = result.reason or "DUPLICATE"
                detail = result.detail or "the same operator and event_id appeared before"
            summary.rejected[reason] += 1
            if len(summary.examples) < show:
                summary.examples.append(f"  line {line_num}: {reason}: {detail}")
    tmp.replace(out_path)
    return summary


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fraudradar import-cdr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path, help="the telco's CSV export (with a header row)")
    parser.add_argument("--mapping", required=True, type=Path, help="YAML mapping of columns and codes")
    parser.add_argument("--out", required=True, type=Path, help="events.jsonl to write (mapped rows only)")
    parser.add_argument("--json", action="store_true", help="print only the JSON summary (as validate --json)")
    parser.add_argument("--show", type=int, default=10, help="rejected rows to show in the human summary")
    args = parser.parse_args(argv)
    try:
        mapping = load_mapping(args.mapping)
        summary = import_cdr(args.file, mapping, args.out, args.show)
    except CdrImportError as exc:
        print(f"fraudradar import-cdr: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary.as_json()))
    else:
        invalid = sum(summary.rejected.values())
        print(f"{args.file}: {summary.mapped + invalid} rows, {summary.mapped} mapped to {args.out}, "
              f"{invalid} rejected")
        for code, count in summary.rejected.most_common():
            print(f"  {code:<16} {count}")
        if summary.examples:
            print("first rejected rows:")
            print("\n".join(summary.examples))
    return 0 if not summary.rejected else 1
