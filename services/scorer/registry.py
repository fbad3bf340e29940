"""The sender-ID registry: who may send under an alphanumeric sender ID or short code.

Operators keep a registry of A2P sender IDs: sender ID → owner, category (bank, OTP, parcel,
retail, government, …) and the aggregators allowed to deliver it. The policy names the registry
file (``sender_registry.path``); ``fraudradar registry import CSV`` checks an operator's export
and writes it in this format, with a reason for every row it refuses.

The scorer never sees a sender ID in plaintext (only its pseudonym), so everything the rules need
is computed here at load and kept as pseudonyms: the registered IDs with their category, and
the **look-alikes** of every protected ID (bank, government by default): the IDs within edit
distance 1 of it after homoglyph folding (0 for IDs of at most 4 folded characters; ``lNG`` →
``ING``, ``Rab0bank`` → ``Rabobank``), in the case styles senders use. A look-alike that is
itself registered is not one.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import product
from pathlib import Path

CATEGORIES = frozenset({"bank", "otp", "government", "parcel", "retail", "operator", "marketing", "service",
                        "health", "transport", "utility", "other"})
COLUMNS = ("sender_id", "owner", "category", "aggregators")
# a sender ID as ingest accepts it: at most 11 characters, letters, digits, space and . - _ & +
_SENDER_ID = re.compile(r"^[A-Za-z0-9 .\-_&+]{1,11}$")
_SHORT_CODE = re.compile(r"^[0-9]{3,8}$")
_AGGREGATOR = re.compile(r"^[a-z0-9-]{1,32}$")
# homoglyph folding: characters a spoofer swaps for one another, folded to one representative
_FOLD = str.maketrans({"0": "o", "1": "i", "l": "i", "|": "i", "!": "i", "5": "s", "$": "s", "3": "e",
                       "4": "a", "@": "a", "8": "b", "7": "t", "2": "z", "9": "g", "6": "g"})
_UNFOLD: dict[str, str] = {}
for _src, _dst in {"0": "o", "1": "i", "l": "i", "5": "s", "3": "e", "4": "a", "8": "b", "7": "t",
                   "2": "z", "9": "g", "6": "g"}.items():
    _UNFOLD[_dst] = _UNFOLD.get(_dst, _dst) + _src
_EDIT_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 .-_"


class RegistryError(ValueError):
    """The registry file cannot be used (unreadable, no header, a bad row in a loaded registry)."""


@dataclass(frozen=True)
class Sender:
    sender_id: str
    owner: str
    category: str
    aggregators: tuple[str, ...]


def fold(sender_id: str) -> str:
    """The homoglyph-folded form: lower case, look-alike digits and signs mapped to letters,
    spaces and separators dropped (``Rab0-bank`` and ``rabobank`` fold alike)."""
    text = sender_id.lower().translate(_FOLD)
    return re.sub(r"[ .\-_&+]", "", text).replace("rn", "m").replace("vv", "w")


def edit_distance(a: str, b: str, cap: int = 3) -> int:
    """Levenshtein distance of ``a`` and ``b`` (stops counting at ``cap``)."""
    if abs(len(a) - len(b)) >= cap:
        return cap
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return min(prev[-1], cap)


def looks_like(candidate: str, protected: str) -> bool:
    """Is ``candidate`` a look-alike of ``protected``: not the same ID, and after folding the same
    (short IDs, at most 4 folded characters, whose one-edit neighbourhood is ordinary words) or
    at edit distance 1 (longer IDs)?"""
    target = fold(protected)
    return candidate != protected and edit_distance(fold(candidate), target) <= (0 if len(target) <= 4 else 1)


def check_row(row: dict[str, str]) -> Sender:
    """One registry row as a ``Sender``, or ``ValueError`` with the reason it is refused."""
    sender_id = (row.get("sender_id") or "").strip()
    if not sender_id:
        raise ValueError("sender_id is empty")
    if not (_SHORT_CODE.match(sender_id) or (_SENDER_ID.match(sender_id) and not sender_id.isdigit())):
        raise ValueError(f"sender_id {sender_id!r} is neither a short code (3-8 digits) nor an alphanumeric "
                         "sender id (1-11 of letters, digits, space . - _ & +, not all digits)")
    owner = (row.get("owner") or "").strip()
    if not owner:
        raise ValueError("owner is empty")
    category = (row.get("category") or "").strip().lower()
    if category not in CATEGORIES:
        raise ValueError(f"category {category!r} is not one of {', '.join(sorted(CATEGORIES))}")
    aggregators = tuple(a.strip() for a in (row.get("aggregators") or "").split(";") if a.strip())
    bad = [a for a in aggregators if not _AGGREGATOR.match(a)]
    if bad:
        raise ValueError(f"aggregator {bad[0]!r} is not an operator/aggregator id ([a-z0-9-], at most 32)")
    return Sender(sender_id, owner, category, aggregators)


def _rows(text: str, source: str) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS[:3] if c not in (reader.fieldnames or [])]
    if missing:
        raise RegistryError(f"{source}: header lacks column(s) {', '.join(missing)} (need {', '.join(COLUMNS)})")
    for row in reader:
        yield reader.line_num, {k: v for k, v in row.items() if isinstance(k, str) and isinstance(v, str)}


def load(path: Path) -> list[Sender]:
    """A registry file as written by ``fraudradar registry import``: any bad row is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"cannot read sender registry {path}: {exc}") from exc
    out: list[Sender] = []
    seen: set[str] = set()
    for line, row in _rows(text, str(path)):
        try:
            sender = check_row(row)
        except ValueError as exc:
            raise RegistryError(f"{path}:{line}: {exc}") from exc
        if sender.sender_id in seen:
            raise RegistryError(f"{path}:{line}: sender_id {sender.sender_id!r} appears twice")
        seen.add(sender.sender_id)
        out.append(sender)
    return out


def lookalikes(protected: str) -> set[str]:
    """Sender IDs a spoofer would use for ``protected``: its case styles, each with up to two
    homoglyph swaps, and each with one edit (substitution, insertion, deletion, swap of two
    neighbours). Every returned ID satisfies ``looks_like(id, protected)``."""
    styles = {protected, protected.upper(), protected.lower(), protected.capitalize()}
    out: set[str] = set()
    for style in styles:
        # homoglyph swaps: up to two positions, each to any character folding alike
        options = [sorted({c, *(_UNFOLD.get(c.lower(), "")), *(x.upper() for x in _UNFOLD.get(c.lower(), "")
                                                                 if x.isalpha())}) for c in style]
        for i in range(len(style)):
            for j in range(i, len(style)):
                for a, b in product(options[i], options[j]):
                    chars = list(style)
                    chars[i] = a
                    chars[j] = b
                    out.add("".join(chars))
        # one edit
        for i in range(len(style) + 1):
            upper = style[min(i, len(style) - 1)].isupper()
            for letter in _EDIT_ALPHABET:
                c = letter.upper() if upper else letter
                out.add(style[:i] + c + style[i:])
                if i < len(style):
                    out.add(style[:i] + c + style[i + 1:])
            if i < len(style):
                out.add(style[:i] + style[i + 1:])
            if i < len(style) - 1:
                out.add(style[:i] + style[i + 1] + style[i] + style[i + 2:])
    return {s for s in out if 0 < len(s) <= 11 and _SENDER_ID.match(s) and looks_like(s, protected)}


@dataclass(frozen=True)
class RegistryIndex:
    """What the scorer needs, as pseudonyms: registered IDs → category, look-alike IDs → the
    protected ID they imitate (its category), protected IDs."""

    category: dict[str, str]
    lookalike: dict[str, str]
    protected: frozenset[str]


def index(senders: Iterable[Sender], protected_categories: Iterable[str],
          pseudonym: Callable[[str], str | None]) -> RegistryIndex:
    """Pseudonymise the registry for the scorer (``pseudonym``: sender ID → the pseudonym ingest
    gives it, None for an ID ingest would refuse; a registered ID must have one)."""
    senders = list(senders)
    protected_set = set(protected_categories)
    registered = {s.sender_id for s in senders}
    category: dict[str, str] = {}
    protected: set[str] = set()
    for s in senders:
        own = pseudonym(s.sender_id)
        if own is None:
            raise RegistryError(f"sender_id {s.sender_id!r} is refused by ingest's normalisation")
        category[own] = s.category
        if s.category in protected_set:
            protected.add(own)
    lookalike: dict[str, str] = {}
    for s in senders:
        if s.category not in protected_set or s.sender_id.isdigit():
            continue
        for alike in sorted(lookalikes(s.sender_id) - registered):
            alias = pseudonym(alike)
            if alias is not None and alias not in category:
                lookalike[alias] = s.category
    return RegistryIndex(category, lookalike, frozenset(protected))


def import_csv(source: Path, dest: Path, rejected: Path | None = None) -> tuple[int, int]:
    """Check an operator's registry export and write the accepted rows to ``dest`` (this module's
    format); every refused row goes to ``rejected`` (JSON lines: line, row, reason), nothing is
    dropped silently. Returns ``(accepted, refused)``."""
    try:
        text = source.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"cannot read {source}: {exc}") from exc
    accepted: list[Sender] = []
    refused: list[dict[str, object]] = []
    seen: dict[str, int] = {}
    for line, row in _rows(text, str(source)):
        try:
            sender = check_row(row)
            if sender.sender_id in seen:
                raise ValueError(f"sender_id {sender.sender_id!r} already on line {seen[sender.sender_id]}")
        except ValueError as exc:
            refused.append({"line": line, "row": row, "reason": str(exc)})
            continue
        seen[sender.sender_id] = line
        accepted.append(sender)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for s in accepted:
        writer.writerow((s.sender_id, s.owner, s.category, ";".join(s.aggregators)))
    dest.write_text(out.getvalue(), encoding="utf-8")
    if refused:
        rejected = rejected or dest.with_name(dest.name + ".rejected.jsonl")
        rejected.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in refused), encoding="utf-8")
    return len(accepted), len(refused)


def main(argv: list[str]) -> int:
    """``fraudradar registry import CSV --out PATH [--rejected PATH]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="fraudradar registry", description="manage the sender-ID registry")
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="check an operator's sender-ID export and write the registry file")
    imp.add_argument("csv", type=Path, help=f"CSV with columns {', '.join(COLUMNS)} (aggregators ;-separated)")
    imp.add_argument("--out", type=Path, required=True,
                     help="registry file to write (the policy's sender_registry.path)")
    imp.add_argument("--rejected", type=Path, default=None,
                     help="where refused rows go with their reason (default: OUT.rejected.jsonl)")
    args = parser.parse_args(argv)
    try:
        accepted, refused = import_csv(args.csv, args.out, args.rejected)
    except RegistryError as exc:
        print(f"fraudradar registry: {exc}", file=sys.stderr)
        return 2
    where = args.rejected or args.out.with_name(args.out.name + ".rejected.jsonl")
    refused_note = f"; {refused} refused, reasons in {where}" if refused else ""
    print(f"{accepted} sender(s) written to {args.out}{refused_note}")
    return 1 if refused else 0
