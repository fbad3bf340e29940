"""Every module, class, function and file a doc names in backticks exists.

The docs are README.md and docs/*.md. A backtick span (inline code, not a fenced block) is
checked when it is one of these, and skipped otherwise (topic names, policy keys, Helm values,
shell commands, JSON fields):

1. **file path**: no spaces, starts with a top-level directory of the repository (``services/``,
   ``models/``, ``tests/``, ``bench/``, ``docs/``, ``deploy/``, ``reliability/``, ``scripts/``)
   → the file or directory exists. A ``:line`` or ``::test`` suffix is ignored; a span with a
   placeholder (``<``, ``{``, ``*``) or a mutant's name (``…__mutmut_N``) is skipped. A bare
   ``name.py`` or ``name.c`` → some file of the project has that name.
2. **full dotted path**: ``services.X…`` or ``models.X…`` whose first two parts name a package
   or module of the project (so ``models.warmup``, a policy key, is not one) → importing the
   longest module prefix and getting the rest as attributes succeeds.
3. **module-qualified name**: ``m.name…`` where ``m`` is the file name of exactly one Python
   module of services/ or models/ (API routers excepted: they are named after the resources,
   like the event types ``risk.changed``), or a C extension (``_fastcore``, ``_hstcore``),
   and not a section of the policy file (``links.max_points`` is a setting), and the last part
   is not a file extension (``pseudonym.key`` is a file) → ``name…`` is an attribute of that
   module.
4. **class-qualified name**: ``Class.attr`` where ``Class`` (CamelCase) is a class defined in
   services/, models/, reliability/ or tests/support → some class of that name has ``attr``
   (a method, property or class-level field, found in its source).
"""

from __future__ import annotations

import ast
import importlib
import re
from collections import defaultdict
from pathlib import Path

from services.scorer.policy import PolicyFile

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = ("services/", "models/", "tests/", "bench/", "docs/", "deploy/", "reliability/", "scripts/")
CODE_DIRS = ("services", "models", "reliability", "bench", "tests", "scripts")
SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
FILE_SUFFIXES = {"key", "json", "jsonl", "yaml", "csv", "png", "html", "txt", "md", "py", "c", "com"}
DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+(\(\))?$")


def _spans(docs: list[Path]) -> list[tuple[str, str]]:
    out = []
    for doc in docs:
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
        out += [(doc.name, span.strip()) for span in SPAN.findall(text)]
    return out


def _py_modules() -> dict[str, list[str]]:
    """File name → dotted module paths, for services/ and models/."""
    found: dict[str, list[str]] = defaultdict(list)
    for base in ("services", "models"):
        for path in (ROOT / base).rglob("*.py"):
            if path.name != "__init__.py" and "routers" not in path.parts:
                found[path.stem].append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    found["_fastcore"].append("services.scorer._fastcore")
    found["_hstcore"].append("models._hstcore")
    return found


def _classes() -> dict[str, set[str]]:
    """Class name → names defined in its body (methods, properties, fields), over the project."""
    members: dict[str, set[str]] = defaultdict(set)
    for base in ("services", "models", "reliability", "tests/support"):
        for path in (ROOT / base).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    for item in node.body:
                        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                            members[node.name].add(item.name)
                        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                            members[node.name].add(item.target.id)
                        elif isinstance(item, ast.Assign):
                            members[node.name] |= {t.id for t in item.targets if isinstance(t, ast.Name)}
    return members


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def _file_exists(span: str) -> bool:
    path = re.sub(r"(::\w+|:\d+(-\d+)?)$", "", span).rstrip("/")
    return (ROOT / path).exists()


def _problems(docs: list[Path] = DOCS) -> list[str]:
    modules = _py_modules()
    classes = _classes()
    file_names = {p.name for d in CODE_DIRS for p in (ROOT / d).rglob("*") if p.is_file()}
    file_names |= {p.name for p in ROOT.iterdir() if p.is_file()}
    policy_sections = set(PolicyFile.model_fields)
    problems = []
    for doc, span in _spans(docs):
        if " " in span or any(c in span for c in "<{*") or "__mutmut_" in span:
            continue  # a mutant's name (docs/mutation.md) names generated code, not ours
        if span.startswith(TOP):
            if not _file_exists(span):
                problems.append(f"{doc}: `{span}` (no such file)")
            continue
        if re.fullmatch(r"\w+\.(py|c)", span):
            if span not in file_names:
                problems.append(f"{doc}: `{span}` (no such file)")
            continue
        if not DOTTED.match(span):
            continue
        name = span.removesuffix("()")
        parts = name.split(".")
        if parts[-1] in FILE_SUFFIXES:
            continue
        if parts[0] in ("services", "models"):
            is_module = (ROOT / parts[0] / parts[1]).is_dir() or (ROOT / parts[0] / f"{parts[1]}.py").exists()
            if is_module and not _resolves(name):
                problems.append(f"{doc}: `{span}` (does not resolve)")
        elif parts[0] in modules and parts[0] not in policy_sections:
            if len(modules[parts[0]]) == 1 and not _resolves(f"{modules[parts[0]][0]}.{'.'.join(parts[1:])}"):
                problems.append(f"{doc}: `{span}` (not in {modules[parts[0]][0]})")
        elif parts[0][:1].isupper() and len(parts) == 2 and parts[0] in classes:
            if parts[1] not in classes[parts[0]]:
                problems.append(f"{doc}: `{span}` (class {parts[0]} has no {parts[1]})")
        elif parts[0][:1].isupper() and len(parts) == 2 and parts[0] not in classes:
            problems.append(f"{doc}: `{span}` (no class {parts[0]})")
    return problems


def test_every_code_path_a_doc_names_exists() -> None:
    assert _problems() == []


def test_the_rule_catches_a_stale_name(tmp_path: Path) -> None:
    doc = tmp_path / "stale.md"
    doc.write_text("`services/scorer/store.py`, `features.no_such_function`, `ScoringEngine.commit_records`, "
                   "`services.scorer.engine.NoSuchClass`, `models.warmup`, `links.max_points`\n")
    found = _problems([doc])
    assert len(found) == 4, found      # the policy keys are not code paths
