"""Secret references (``{env: NAME}`` or ``{file: PATH}``), confined to what the operator
allows. Values are read when an adapter connects and never stored, logged or returned.

A domain admin may apply a Source in their own domain, but the gateway reads the Source's
secrets with the gateway's own rights and sends them to the Source's URL, which the domain
admin chose. Left open, a reference could name the gateway's database URL or its admin
token and hand it to a server of theirs. So a reference reaches only what the operator
allow-lists in the settings:

* ``ACCORD_SECRET_ENV_PREFIXES`` — environment variables whose name starts with one of
  these prefixes (default ``ACCORD_SECRET_``);
* ``ACCORD_SECRET_DIRS`` — files inside one of these directories (default
  ``<data dir>/secrets`` and ``/var/run/secrets/accord``, where a Kubernetes Secret is
  mounted).

Whatever the allow-list says, a reference never reaches the gateway's own settings
(``ACCORD_DATABASE_URL``, ...), its data directory (database, admin token) other than a
secrets directory inside it, its audit signing key, Kubernetes service-account tokens, or
``/proc``, ``/sys`` and ``/dev``.

:meth:`SecretPolicy.check` looks at the reference alone: it reads neither the variable nor
the file, so validating a document tells nobody whether either exists.
:meth:`SecretPolicy.resolve` checks again (a row may come from an older database), follows
symbolic links, refuses a file whose real path leaves the allowed directories, and only
then reads it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from pydantic import BaseModel, SecretStr
from sqlalchemy.engine import make_url

from gateway.model import SecretRef
from gateway.settings import Settings

__all__ = [
    "SecretMissing",
    "SecretPolicy",
    "SecretRefused",
    "find_refs",
    "resolve_secret",
]

_MAX_BYTES = 1024 * 1024
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Never readable through a reference, whatever ACCORD_SECRET_DIRS says.
_SYSTEM_DENIED = (
    "/proc",
    "/sys",
    "/dev",
    "/var/run/secrets/kubernetes.io",
    "/run/secrets/kubernetes.io",
)


class SecretMissing(LookupError):
    """A secret reference points at nothing (the message names the reference, not a value)."""


class SecretRefused(LookupError):
    """A secret reference points outside what the operator allows."""


def _norm(path: str | PurePath) -> Path:
    """Absolute and without ``.`` or ``..`` — computed from the text alone."""
    return Path(os.path.normpath(os.path.abspath(path)))


def _within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _both(paths: Iterable[str | PurePath]) -> tuple[Path, ...]:
    """Each path as written and with its symbolic links followed (operator settings, so
    looking at the file system here tells a domain admin nothing)."""
    out: list[Path] = []
    for p in paths:
        for form in (_norm(p), Path(os.path.realpath(_norm(p)))):
            if form not in out:
                out.append(form)
    return tuple(out)


@dataclass(frozen=True)
class SecretPolicy:
    """Where secret references may point (see the module docstring)."""

    env_prefixes: tuple[str, ...]
    dirs: tuple[Path, ...]
    denied_env: frozenset[str] = frozenset()  # upper case
    denied_paths: tuple[Path, ...] = ()  # files and directories
    data_dirs: tuple[Path, ...] = ()  # the data directory, as written and real

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretPolicy:
        denied: list[str | PurePath] = [settings.admin_token_file, *_SYSTEM_DENIED]
        url = make_url(settings.resolved_database_url())
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            db = str(url.database)
            denied += [db, db + "-wal", db + "-shm", db + "-journal"]
        if settings.audit_signing_key_file is not None:
            denied.append(settings.audit_signing_key_file)
        # Every name pydantic-settings would read as a setting (it ignores case).
        own = {f"ACCORD_{name}".upper() for name in Settings.model_fields}
        return cls(
            env_prefixes=tuple(settings.secret_env_prefixes),
            dirs=tuple(_norm(d) for d in settings.secret_directories),
            denied_env=frozenset(own),
            denied_paths=_both(denied),
            data_dirs=_both([settings.data_dir]),
        )

    def allow_list(self) -> str:
        """The allow-list in words, for error messages."""
        envs = ", ".join(f"{p}*" for p in self.env_prefixes) or "none"
        dirs = ", ".join(f"{d}/" for d in self.dirs) or "none"
        return (
            f"references may name environment variables {envs} and files inside {dirs}"
            " (settings ACCORD_SECRET_ENV_PREFIXES, ACCORD_SECRET_DIRS)"
        )

    # -- checking: the reference alone ---------------------------------------------------
    def check(self, ref: SecretRef) -> str | None:
        """Why ``ref`` is not allowed, or None. Reads neither the variable nor the file."""
        if ref.env is not None:
            return self._check_env(ref.env)
        assert ref.file is not None
        return self._check_file(ref.file)

    def _check_env(self, name: str) -> str | None:
        if not _ENV_NAME.fullmatch(name):
            return "not a valid environment variable name"
        if name.upper() in self.denied_env:
            return f"{name} is one of the gateway's own settings"
        if not any(name.startswith(p) for p in self.env_prefixes):
            return f"{name} does not start with an allowed prefix"
        return None

    def _check_file(self, raw: str) -> str | None:
        if "\x00" in raw:
            return "the path holds a NUL character"
        if not PurePath(raw).is_absolute():
            return "the path must be absolute"
        if ".." in PurePath(raw).parts:
            return "the path must not contain '..'"
        return self._check_path(_norm(raw), self.dirs)

    def _check_path(self, path: Path, dirs: Iterable[Path]) -> str | None:
        home = [d for d in dirs if path != d and d in path.parents]
        if not home:
            return "the file is not inside an allowed directory"
        if any(_within(path, d) for d in self.denied_paths):
            return "the file belongs to the gateway or the system"
        for d in self.data_dirs:
            # Only a secrets directory strictly inside the data directory opens it.
            if _within(path, d) and not any(d in h.parents for h in home):
                return "the file is in the gateway's data directory"
        return None

    def refusal(self, ref: SecretRef) -> str | None:
        """The whole message for a refused reference, or None."""
        problem = self.check(ref)
        if problem is None:
            return None
        return f"secret reference {ref.describe()} is not allowed: {problem}; {self.allow_list()}"

    # -- resolving: when an adapter connects ----------------------------------------------
    def resolve(self, ref: SecretRef) -> SecretStr:
        """The value of ``ref``; :class:`SecretRefused` or :class:`SecretMissing` otherwise."""
        refused = self.refusal(ref)
        if refused is not None:
            raise SecretRefused(refused)
        if ref.env is not None:
            value = os.environ.get(ref.env)
            if value is None:
                raise SecretMissing(f"secret reference env:{ref.env}: the variable is not set")
            return SecretStr(value)
        assert ref.file is not None
        return SecretStr(self._read(ref.file))

    def _read(self, raw: str) -> str:
        where = f"secret reference file:{raw}"
        real = Path(os.path.realpath(_norm(raw)))
        problem = self._check_path(real, _both(self.dirs))
        if problem is not None:
            raise SecretRefused(
                f"{where} is not allowed: its real path leaves the allowed directories"
                f" ({problem}); {self.allow_list()}"
            )
        try:
            # O_NOFOLLOW: the real path must not have become a link since it was resolved.
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise SecretMissing(f"{where}: cannot read it ({exc.strerror})") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SecretMissing(f"{where}: not a regular file")
            data = os.read(fd, _MAX_BYTES + 1)
        finally:
            os.close(fd)
        if len(data) > _MAX_BYTES:
            raise SecretMissing(f"{where}: larger than 1 MiB")
        try:
            return data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SecretMissing(f"{where}: not UTF-8 text") from None


def resolve_secret(ref: SecretRef) -> SecretStr:
    """Resolve ``ref`` under the policy of the settings in this process's environment."""
    return SecretPolicy.from_settings(Settings()).resolve(ref)


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
