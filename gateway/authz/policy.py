"""Authorization: Casbin is the policy language and the reference for every decision.

Plain ``enforce`` scans every policy line per request, so the gateway never calls it per
row. Instead, a subject's effective grants are derived once per policy version (the
roles it holds in each domain and those roles' allow and deny patterns) and used two
ways: compiled into a SQL predicate that every list, count and export query applies, and
evaluated in Python for single decisions, which are cached. ``tests/unit/test_authz.py``
checks both agree with ``enforce`` over random policies.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import casbin
from sqlalchemy import and_, false, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from policies import POLICY_DIR

from .patterns import obj_match, to_like

__all__ = ["Binding", "Decision", "Grant", "Grants", "PolicySet", "Rule"]

ANY = "*"


@dataclass(frozen=True, order=True)
class Rule:
    """A Casbin ``p`` line: subject (usually a role), domain, object pattern, action, effect."""

    sub: str
    dom: str
    obj: str
    act: str
    eft: str = "allow"

    def line(self) -> str:
        return f"p, {self.sub}, {self.dom}, {self.obj}, {self.act}, {self.eft}"


@dataclass(frozen=True, order=True)
class Binding:
    """A Casbin ``g`` line: subject holds role in domain ("*" = every domain)."""

    sub: str
    role: str
    dom: str

    def line(self) -> str:
        return f"g, {self.sub}, {self.role}, {self.dom}"


@dataclass(frozen=True)
class Grant:
    dom: str  # "*" or one domain
    obj: str  # glob pattern over job uids
    act: str
    eft: str
    rule: Rule


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    matched: Rule | None = None

    @property
    def policy(self) -> str | None:
        return self.matched.line() if self.matched else None


@dataclass
class Grants:
    """What one subject may do, per the policy version it was derived from."""

    subject: str
    entries: list[Grant] = field(default_factory=list)

    def _for(self, act: str) -> tuple[list[Grant], list[Grant]]:
        allow = [g for g in self.entries if g.act in (act, ANY) and g.eft == "allow"]
        deny = [g for g in self.entries if g.act in (act, ANY) and g.eft == "deny"]
        return allow, deny

    def decide(self, dom: str, obj: str, act: str) -> Decision:
        allow, deny = self._for(act)

        def hit(g: Grant) -> bool:
            return (g.dom == ANY or g.dom == dom) and obj_match(obj, g.obj)

        for g in deny:
            if hit(g):
                return Decision(False, f"denied by {g.rule.line()}", g.rule)
        for g in allow:
            if hit(g):
                return Decision(True, f"allowed by {g.rule.line()}", g.rule)
        return Decision(False, f"no rule allows {self.subject!r} to {act} {obj} in {dom}")

    def object_blind(self, act: str) -> bool:
        """True when every grant for ``act`` covers all objects of its domain: then the
        decision depends on the domain alone."""
        return all(g.obj == ANY for g in self.entries if g.act in (act, ANY))

    def can_anywhere(self, act: str) -> bool:
        allow, _deny = self._for(act)
        return bool(allow)

    def predicate(self, act: str, domain_col: Any, uid_col: Any) -> ColumnElement[bool]:
        """A SQL condition true exactly for the rows (domain, uid) ``decide`` would allow."""
        allow, deny = self._for(act)

        def cond(g: Grant) -> ColumnElement[bool]:
            parts: list[ColumnElement[bool]] = []
            if g.dom != ANY:
                parts.append(domain_col == g.dom)
            if g.obj != ANY:
                if uid_col is None:
                    # An object-scoped grant on an object without a uid (e.g. an audit
                    # record) grants nothing there.
                    return false()
                if "*" in g.obj or "?" in g.obj:
                    parts.append(uid_col.like(to_like(g.obj), escape="\\"))
                else:
                    parts.append(uid_col == g.obj)
            return and_(true(), *parts) if parts else true()

        if not allow:
            return false()
        allowed = or_(*[cond(g) for g in allow])
        if not deny:
            return allowed
        return and_(allowed, not_(or_(*[cond(g) for g in deny])))


class PolicySet:
    """An immutable policy version: rules, bindings, a Casbin enforcer and caches."""

    def __init__(self, rules: Iterable[Rule], bindings: Iterable[Binding]) -> None:
        self.rules: tuple[Rule, ...] = tuple(sorted(set(rules)))
        self.bindings: tuple[Binding, ...] = tuple(sorted(set(bindings)))
        digest = hashlib.sha256()
        for r in self.rules:
            digest.update(r.line().encode() + b"\n")
        for b in self.bindings:
            digest.update(b.line().encode() + b"\n")
        self.version = digest.hexdigest()[:16]
        self._enforcer: casbin.Enforcer | None = None
        self._grants: dict[str, Grants] = {}
        self._decisions: OrderedDict[tuple[str, str, str, str], Decision] = OrderedDict()
        self._lock = threading.Lock()
        self._by_sub: dict[str, list[Rule]] = {}
        for r in self.rules:
            self._by_sub.setdefault(r.sub, []).append(r)

    # -- the reference: Casbin ------------------------------------------------------------
    def enforcer(self) -> casbin.Enforcer:
        if self._enforcer is None:
            e = casbin.Enforcer(str(POLICY_DIR / "model.conf"))
            e.add_function("objMatch", obj_match)
            for r in self.rules:
                e.add_policy(r.sub, r.dom, r.obj, r.act, r.eft)
            for b in self.bindings:
                e.add_grouping_policy(b.sub, b.role, b.dom)
            self._enforcer = e
        return self._enforcer

    def enforce(self, sub: str, dom: str, obj: str, act: str) -> bool:
        """Plain Casbin ``enforce`` (the reference; slow)."""
        return bool(self.enforcer().enforce(sub, dom, obj, act))

    # -- the compiled path -----------------------------------------------------------------
    def grants(self, subject: str) -> Grants:
        with self._lock:
            cached = self._grants.get(subject)
        if cached is not None:
            return cached
        grants = Grants(subject, self._derive(subject))
        with self._lock:
            self._grants[subject] = grants
        return grants

    def _derive(self, subject: str) -> list[Grant]:
        # Roles reachable from the subject, per binding domain. Casbin's role manager links
        # within one domain string, so inheritance is followed inside the same domain.
        held: set[tuple[str, str]] = set()
        frontier = [(b.role, b.dom) for b in self.bindings if b.sub == subject]
        while frontier:
            role, dom = frontier.pop()
            if (role, dom) in held:
                continue
            held.add((role, dom))
            frontier.extend((b.role, dom) for b in self.bindings if b.sub == role and b.dom == dom)
        out: list[Grant] = []
        # Rules naming the subject itself apply in every domain (g(x, x, d) is always true).
        for r in self._by_sub.get(subject, []):
            out.append(Grant(r.dom, r.obj, r.act, r.eft, r))
        for role, bdom in sorted(held):
            for r in self._by_sub.get(role, []):
                if bdom == ANY:
                    dom = r.dom
                elif r.dom in (ANY, bdom):
                    dom = bdom
                else:
                    continue
                out.append(Grant(dom, r.obj, r.act, r.eft, r))
        return out

    def decide(self, sub: str, dom: str, obj: str, act: str) -> Decision:
        key = (sub, dom, obj, act)
        with self._lock:
            hit = self._decisions.get(key)
            if hit is not None:
                self._decisions.move_to_end(key)
                return hit
        decision = self.grants(sub).decide(dom, obj, act)
        with self._lock:
            self._decisions[key] = decision
            if len(self._decisions) > 100_000:
                self._decisions.popitem(last=False)
        return decision

    def roles_of(self, subject: str) -> list[tuple[str, str]]:
        return sorted((b.role, b.dom) for b in self.bindings if b.sub == subject)

    def role_names(self) -> Sequence[str]:
        return sorted({r.sub for r in self.rules})
