"""Reading and validating declarative documents: every error names the file, the line
(where the YAML parser knows it), the document and the field path; every error of every
document is reported in one pass, sorted by file and line; and nothing changes unless
every document is valid."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, SequenceNode

from adapters.base import AdapterConfigError, UnknownAdapterType, registry
from gateway.governance.compliance import RuleSyntaxError, compile_expression
from gateway.governance.guardrails import check_supported
from gateway.model.resources import (
    API_VERSION,
    KINDS,
    ComplianceRule,
    Dependency,
    Guardrail,
    Notifier,
    Source,
)
from gateway.secrets import SecretPolicy, find_refs
from gateway.settings import Settings

from .dependencies import dependency_graph, describe_cycle, find_cycle

__all__ = ["ConfigError", "Document", "LoadResult", "load_documents", "load_path"]

_MAX_FILE_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class ConfigError:
    file: str
    document: int  # 1-based index within the file (0: the file itself)
    path: str  # field path, "" for the whole document
    message: str
    name: str | None = None
    line: int | None = None  # 1-based line of the field (or document) in the file

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}"
        if self.document:
            where += f": document {self.document}"
            if self.name:
                where += f" ({self.name})"
        if self.path:
            where += f": {self.path}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Document:
    file: str
    index: int
    resource: BaseModel  # one of the KINDS

    @property
    def kind(self) -> str:
        return str(getattr(self.resource, "kind"))  # noqa: B009

    @property
    def name(self) -> str:
        return str(getattr(self.resource, "metadata").name)  # noqa: B009

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)

    def as_dict(self) -> dict[str, Any]:
        return self.resource.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass
class LoadResult:
    documents: list[Document] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def _loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def load_documents(
    raw_docs: Iterable[tuple[str, int, Any]],
    *,
    check_secrets: bool = True,
    secrets: SecretPolicy | None = None,
) -> LoadResult:
    """Validate already-parsed documents (file label, index, parsed YAML).

    With ``check_secrets``, every secret reference of a Source must be one the gateway may
    read (``secrets``, default: the policy of this process's settings); the reference is
    checked as written, never read. ``check_secrets=False`` leaves that to the gateway the
    documents are sent to."""
    policy = None
    if check_secrets:
        policy = secrets or SecretPolicy.from_settings(Settings())
    result = LoadResult()
    seen: dict[tuple[str, str], str] = {}
    for fname, idx, doc in raw_docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            result.errors.append(
                ConfigError(
                    fname, idx, "", f"a document must be a mapping, not {type(doc).__name__}"
                )
            )
            continue
        kind = doc.get("kind")
        name = (
            (doc.get("metadata") or {}).get("name")
            if isinstance(doc.get("metadata"), dict)
            else None
        )
        label = f"{kind}/{name}" if isinstance(kind, str) and kind and name else None
        if doc.get("apiVersion") != API_VERSION:
            result.errors.append(
                ConfigError(
                    fname,
                    idx,
                    "apiVersion",
                    f"must be {API_VERSION!r}, got {doc.get('apiVersion')!r}",
                    label,
                )
            )
            # Go on: the rest of the document is checked too (without repeating this).
            doc = {**doc, "apiVersion": API_VERSION}
            failed = True
        else:
            failed = False
        if not isinstance(kind, str) or kind not in KINDS:
            what = (
                f"unknown kind {kind!r}"
                if isinstance(kind, str) or kind is None
                else f"must be a string, got {type(kind).__name__} {kind!r}"
            )
            result.errors.append(
                ConfigError(fname, idx, "kind", f"{what}; known kinds: {', '.join(KINDS)}", label)
            )
            continue
        try:
            resource = KINDS[kind].model_validate(doc)
        except ValidationError as exc:
            for e in exc.errors(include_url=False):
                result.errors.append(ConfigError(fname, idx, _loc(e["loc"]), e["msg"], label))
            if kind == "Source":
                # The adapter's own settings are checked even when a common field is wrong.
                result.errors.extend(_check_raw_source(fname, idx, doc, label))
            continue
        document = Document(fname, idx, resource)
        if isinstance(resource, Source):
            result.errors.extend(_check_source(document, resource, policy))
        if isinstance(resource, ComplianceRule):
            try:
                compile_expression(resource.spec.expression)
            except RuleSyntaxError as exc:
                result.errors.append(ConfigError(fname, idx, "spec.expression", str(exc), label))
        if isinstance(resource, Notifier) and policy is not None:
            for path, ref in find_refs(resource.spec):
                refused = policy.refusal(ref)
                if refused is not None:
                    result.errors.append(ConfigError(fname, idx, path, refused, label))
        if isinstance(resource, Guardrail):
            problem = check_supported(resource)
            if problem:
                result.errors.append(ConfigError(fname, idx, "spec", problem, label))
        where = f"{fname}: document {idx}"
        if failed:
            continue
        if document.key in seen:
            result.errors.append(
                ConfigError(
                    fname,
                    idx,
                    "metadata.name",
                    f"duplicate {kind} named {document.name!r}"
                    f" (first defined in {seen[document.key]})",
                    label,
                )
            )
            continue
        seen[document.key] = where
        result.documents.append(document)
    result.errors.extend(_dependency_cycles(result.documents))
    return result


_COMMON_SPEC = ("type", "enabled", "demo", "sync")


def _check_raw_source(
    fname: str, idx: int, doc: dict[str, Any], label: str | None
) -> list[ConfigError]:
    """Adapter settings of a Source whose common fields did not validate."""
    spec = doc.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        return []
    config = {k: v for k, v in spec.items() if k not in _COMMON_SPEC}
    try:
        registry.validate_config(spec["type"], config)
    except UnknownAdapterType as exc:
        return [ConfigError(fname, idx, "spec.type", str(exc), label)]
    except AdapterConfigError as exc:
        return [ConfigError(fname, idx, f"spec.{loc}", msg, label) for loc, msg in exc.errors]
    return []


def _dependency_cycles(documents: list[Document]) -> list[ConfigError]:
    """A cycle among the Dependency documents of one set (apply checks the stored too)."""
    deps = [(d, d.resource) for d in documents if isinstance(d.resource, Dependency)]
    graph, names = dependency_graph([r for _d, r in deps])
    cycle = find_cycle(graph)
    if not cycle:
        return []
    first = next(d for d, r in deps if r.metadata.name == names[(cycle[0], cycle[1])])
    return [
        ConfigError(
            first.file,
            first.index,
            "spec.downstream",
            describe_cycle(cycle, names),
            f"Dependency/{first.name}",
        )
    ]


def _check_source(doc: Document, source: Source, policy: SecretPolicy | None) -> list[ConfigError]:
    label = f"Source/{source.metadata.name}"
    try:
        config = registry.validate_config(source.spec.type, source.spec.adapter_config())
    except UnknownAdapterType as exc:
        return [ConfigError(doc.file, doc.index, "spec.type", str(exc), label)]
    except AdapterConfigError as exc:
        return [
            ConfigError(doc.file, doc.index, f"spec.{loc}", msg, label) for loc, msg in exc.errors
        ]
    errors = []
    if policy is not None:
        for path, ref in find_refs(config):
            refused = policy.refusal(ref)
            if refused is not None:
                errors.append(ConfigError(doc.file, doc.index, path, refused, label))
    return errors


_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def _line_of(node: Node | None, path: str) -> int | None:
    """The line of the deepest node along ``path`` (``spec.auth.tokenFrom[0]``) that the
    document has: for a missing field, the line of the mapping that lacks it."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for index, key in _PART.findall(path):
        if isinstance(node, MappingNode) and key:
            for k, v in node.value:
                if getattr(k, "value", None) == key:
                    line = k.start_mark.line + 1
                    node = v
                    break
            else:
                return line
        elif isinstance(node, SequenceNode) and index:
            i = int(index)
            if i >= len(node.value):
                return line
            node = node.value[i]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _parse_file(
    label: str, data: bytes
) -> tuple[list[tuple[str, int, Any, Node]], list[ConfigError]]:
    """Documents with their YAML nodes (for line numbers), or the error that stops the file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        return [], [
            ConfigError(
                label,
                0,
                "",
                f"not UTF-8: byte 0x{data[exc.start]:02x} at line {line}, column {column}",
                line=line,
            )
        ]
    docs: list[tuple[str, int, Any, Node]] = []
    try:
        # The reader checks for characters YAML forbids (control characters) already here.
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return [], [
            ConfigError(
                label,
                0,
                "",
                f"malformed YAML at line {line}: character {char:#x} is not allowed in YAML",
                line=line,
            )
        ]
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            index += 1
            if node is None:
                continue
            docs.append((label, index, loader.construct_document(node), node))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return docs, [
            ConfigError(
                label,
                0,
                "",
                f"malformed YAML{where}: {problem}",
                line=mark.line + 1 if mark else None,
            )
        ]
    finally:
        loader.dispose()
    return docs, []


def load_path(
    path: Path, *, check_secrets: bool = True, secrets: SecretPolicy | None = None
) -> LoadResult:
    """Read a file or a directory of ``*.yaml`` files and validate every document.

    Errors come sorted by file and line, each with the line of its field where known."""
    if not path.exists():
        return LoadResult(errors=[ConfigError(str(path), 0, "", "no such file or directory")])
    raw: list[tuple[str, int, Any]] = []
    nodes: dict[tuple[str, int], Node] = {}
    errors: list[ConfigError] = []
    files = _files(path)
    if not files:
        errors.append(ConfigError(str(path), 0, "", "no .yaml or .yml files found"))
    for f in files:
        label = str(f)
        try:
            if f.stat().st_size > _MAX_FILE_BYTES:
                errors.append(ConfigError(label, 0, "", "file is larger than 5 MiB"))
                continue
            data = f.read_bytes()
        except OSError as exc:
            errors.append(ConfigError(label, 0, "", f"cannot read: {exc}"))
            continue
        docs, problems = _parse_file(label, data)
        errors.extend(problems)
        for fname, idx, doc, node in docs:
            raw.append((fname, idx, doc))
            nodes[(fname, idx)] = node
    result = load_documents(raw, check_secrets=check_secrets, secrets=secrets)
    located = [
        e
        if e.line is not None or (e.file, e.document) not in nodes
        else replace(e, line=_line_of(nodes[(e.file, e.document)], e.path))
        for e in result.errors
    ]
    result.errors = sorted(
        errors + located, key=lambda e: (e.file, e.line or 0, e.document, e.path)
    )
    return result
