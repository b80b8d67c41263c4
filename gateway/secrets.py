"""Secret references: ``{env: NAME}`` or ``{file: PATH}``. Values are read when used and
never stored, logged or returned."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from gateway.model import SecretRef

__all__ = ["SecretMissing", "find_refs", "resolve_secret"]


class SecretMissing(LookupError):
    """A secret reference points at nothing (the message names the reference, not a value)."""


def resolve_secret(ref: SecretRef) -> SecretStr:
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if value is None:
            raise SecretMissing(f"secret reference env:{ref.env}: the variable is not set")
        return SecretStr(value)
    assert ref.file is not None
    path = Path(ref.file).expanduser()
    try:
        return SecretStr(path.read_text().strip())
    except OSError as exc:
        raise SecretMissing(
            f"secret reference file:{ref.file}: cannot read it ({exc.strerror})"
        ) from None


def find_refs(value: Any, path: str = "spec") -> Iterator[tuple[str, SecretRef]]:
    """Every SecretRef inside a validated config model, with its field path."""
    if isinstance(value, SecretRef):
        yield path, value
    elif isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            yield from find_refs(getattr(value, name), f"{path}.{info.alias or name}")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from find_refs(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from find_refs(v, f"{path}[{i}]")
