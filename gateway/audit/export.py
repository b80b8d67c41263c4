"""Streaming audit exports (JSONL, CSV, OCSF API Activity) with a signed manifest.

An export is two files: the records, and ``<file>.manifest.json`` naming the range, the
count, the first and last sequence numbers, the hash of the last exported record, the
chain head at export time, the SHA-256 of the records file, and an Ed25519 signature over
all of that (the public key is included; compare it with the one you trust).
``verify_export`` checks everything offline: digest, signature, count, and — for JSONL —
every record's own hash.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import ColumnElement, true
from sqlmodel import Session, col, select

from gateway.store.tables import AuditRecord
from gateway.store.types import to_db

from .log import GENESIS, HASHED_FIELDS, record_fields, record_hash

__all__ = [
    "FORMATS",
    "INSTALLATION_KEY",
    "ExportError",
    "SigningKey",
    "generate_key",
    "load_private_key",
    "manifest_key",
    "signing_key",
    "verify_export",
    "write_export",
]

FORMATS = ("jsonl", "csv", "ocsf")
_BATCH = 2000
_CSV_COLUMNS = [*HASHED_FIELDS, "prev_hash", "hash"]


class ExportError(Exception):
    pass


def generate_key(path: Path) -> str:
    """Write a new Ed25519 private key (PEM, mode 0600); return the public key (base64)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=False)
    path.write_bytes(pem)
    return _pub_b64(key.public_key())


INSTALLATION_KEY = "audit-signing-key.pem"


@dataclass(frozen=True)
class SigningKey:
    """The key that signs exports, and where it comes from."""

    key: Ed25519PrivateKey
    path: Path
    origin: str  # "configured" (ACCORD_AUDIT_SIGNING_KEY_FILE) | "installation" (generated)

    @property
    def public_key(self) -> str:
        return _pub_b64(self.key.public_key())


def signing_key(configured: Path | None, data_dir: Path) -> SigningKey:
    """The configured key if there is one, else this installation's own key.

    The installation key is made on first use in the data directory (mode 0600); two
    processes that make it at once end up with the same file (the second one reads it).
    """
    if configured is not None:
        return SigningKey(load_private_key(configured), configured, "configured")
    path = data_dir / INSTALLATION_KEY
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # made by another process just now
        except OSError as exc:
            raise ExportError(f"cannot create the audit signing key {path}: {exc}") from None
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            return SigningKey(key, path, "installation")
    return SigningKey(load_private_key(path), path, "installation")


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot load the audit signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ExportError(f"{path} is not an Ed25519 private key")
    return key


def _pub_b64(pub: Ed25519PublicKey) -> str:
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _iso(dt: datetime) -> str:
    return (to_db(dt) or dt).isoformat(timespec="microseconds") + "Z"


def _record_dict(r: AuditRecord) -> dict[str, Any]:
    return {**record_fields(r), "at": _iso(r.at)}


_OCSF_ACTIVITY = {
    "apply-config": (3, "Update"),
    "push": (1, "Create"),
    "token-create": (1, "Create"),
    "token-revoke": (4, "Delete"),
}


def _ocsf(r: AuditRecord) -> dict[str, Any]:
    activity_id, activity = _OCSF_ACTIVITY.get(r.action, (99, "Other"))
    ok = r.outcome in ("ok", "pending")
    return {
        "class_uid": 6003,
        "class_name": "API Activity",
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": 6003 * 100 + activity_id,
        "time": int(r.at.timestamp() * 1000),
        "severity_id": 1 if ok else 3,
        "status": "Success" if ok else "Failure",
        "status_id": 1 if ok else 2,
        "status_detail": r.outcome,
        "actor": {
            "user": {"name": r.subject, "type": "Service" if r.channel == "agent" else "User"}
        },
        "api": {
            "operation": r.action,
            "request": {"uid": r.request_id},
            "service": {"name": "accord"},
        },
        "resources": [{"uid": r.target, "type": "job-or-run", "group": {"name": r.domain}}],
        "message": r.reason or f"{r.subject} {r.action} {r.target}: {r.outcome}",
        "metadata": {
            "product": {"name": "Accord", "vendor_name": "Accord"},
            "version": "1.1.0",
            "uid": r.hash,
            "sequence": r.seq,
        },
        "unmapped": {
            "decision": r.decision,
            "policy": r.policy,
            "channel": r.channel,
            "details": r.details,
            "prev_hash": r.prev_hash,
        },
    }


def _rows(session: Session, where: list[ColumnElement[bool]]) -> Iterator[AuditRecord]:
    last = 0
    while True:
        rows = session.exec(
            select(AuditRecord)
            .where(col(AuditRecord.seq) > last, *where)
            .order_by(col(AuditRecord.seq))
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


@dataclass
class ExportResult:
    path: Path
    manifest_path: Path
    manifest: dict[str, Any]


def _canonical(manifest: dict[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def write_export(
    session: Session,
    *,
    fmt: str,
    path: Path,
    key: Ed25519PrivateKey,
    since: datetime | None = None,
    until: datetime | None = None,
    domain: str | None = None,
    visible: Callable[[Any], ColumnElement[bool]] | None = None,
) -> ExportResult:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    where: list[ColumnElement[bool]] = [visible(col(AuditRecord.domain)) if visible else true()]
    if since:
        where.append(col(AuditRecord.at) >= to_db(since))
    if until:
        where.append(col(AuditRecord.at) < to_db(until))
    if domain:
        where.append(col(AuditRecord.domain) == domain)
    digest = hashlib.sha256()
    count, first, last_seq, last_hash = 0, None, None, None
    # Written under temporary names and renamed when complete, the manifest last: a
    # process killed mid-export leaves no file at the published names.
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as raw:

        def emit(text: str) -> None:
            data = text.encode("utf-8")
            digest.update(data)
            raw.write(data)

        buf = io.StringIO()
        writer = csv.writer(buf) if fmt == "csv" else None
        if writer:
            writer.writerow(_CSV_COLUMNS)
            emit(buf.getvalue())
        for r in _rows(session, where):
            d = _record_dict(r)
            if writer:
                buf.seek(0)
                buf.truncate()
                writer.writerow(
                    [
                        json.dumps(d[c], sort_keys=True)
                        if c == "details"
                        else ("" if d[c] is None else d[c])
                        for c in _CSV_COLUMNS
                    ]
                )
                emit(buf.getvalue())
            else:
                obj = d if fmt == "jsonl" else _ocsf(r)
                emit(json.dumps(obj, sort_keys=True, ensure_ascii=False) + "\n")
            count += 1
            first = r.seq if first is None else first
            last_seq, last_hash = r.seq, r.hash
    head = session.exec(
        select(AuditRecord.hash).order_by(col(AuditRecord.seq).desc()).limit(1)
    ).first()
    manifest: dict[str, Any] = {
        "kind": "accord.audit-export/v1",
        "format": fmt,
        "file": path.name,
        "created_at": _iso(datetime.now(UTC)),
        "range": {
            "since": _iso(since) if since else None,
            "until": _iso(until) if until else None,
            "domain": domain,
        },
        "count": count,
        "first_seq": first,
        "last_seq": last_seq,
        "head_hash": last_hash,
        "chain_head": head or GENESIS,
        "sha256": digest.hexdigest(),
        "public_key": _pub_b64(key.public_key()),
        "algorithm": "ed25519",
    }
    manifest["signature"] = base64.b64encode(key.sign(_canonical(manifest))).decode()
    mpath = path.with_name(path.name + ".manifest.json")
    mpartial = path.with_name(f".{mpath.name}.partial")
    mpartial.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)
    os.replace(mpartial, mpath)
    return ExportResult(path, mpath, manifest)


def manifest_key(path: Path) -> str | None:
    """The public key embedded in an export's manifest (None if unreadable)."""
    try:
        value = json.loads(path.with_name(path.name + ".manifest.json").read_text())["public_key"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


def verify_export(path: Path, *, trusted_key: str | None = None) -> list[str]:
    """Problems found in an export (empty list: it is intact).

    Without ``trusted_key`` the signature is checked with the key the manifest itself
    carries: that proves the files match each other, not who made them."""
    mpath = path.with_name(path.name + ".manifest.json")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as exc:
        return [f"cannot read the manifest {mpath.name}: {exc}"]
    problems: list[str] = []
    try:
        pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(manifest["public_key"]))
        pub.verify(base64.b64decode(manifest["signature"]), _canonical(manifest))
    except (KeyError, ValueError, InvalidSignature):
        problems.append("the manifest's signature does not verify (manifest changed?)")
    if trusted_key and manifest.get("public_key") != trusted_key:
        problems.append("the manifest was signed with a key other than the trusted one")
    digest = hashlib.sha256()
    lines = 0
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 16), b""):
                digest.update(chunk)
                lines += chunk.count(b"\n")
    except OSError as exc:
        return [*problems, f"cannot read {path}: {exc}"]
    if digest.hexdigest() != manifest.get("sha256"):
        problems.append("the file's SHA-256 does not match the manifest (file changed)")
    if manifest.get("format") == "jsonl":
        problems.extend(_verify_jsonl(path, manifest))
    elif manifest.get("format") == "ocsf" and lines != manifest.get("count"):
        problems.append(f"{lines} records in the file, {manifest.get('count')} in the manifest")
    return problems


def _verify_jsonl(path: Path, manifest: dict[str, Any]) -> list[str]:
    problems = []
    count = 0
    last = None
    with path.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, start=1):
            try:
                d = json.loads(line)
                fields = {k: d[k] for k in HASHED_FIELDS}
                fields["at"] = datetime.fromisoformat(d["at"].rstrip("Z"))
                ok = record_hash(d["prev_hash"], fields) == d["hash"]
            except (ValueError, KeyError, TypeError):
                problems.append(f"line {n} is not a valid audit record")
                continue
            if not ok:
                problems.append(f"record {d['seq']} (line {n}) does not match its hash")
            count += 1
            last = d["hash"]
    if count != manifest.get("count"):
        problems.append(f"{count} records in the file, {manifest.get('count')} in the manifest")
    if count and last != manifest.get("head_hash"):
        problems.append("the last record is not the one the manifest names")
    return problems
