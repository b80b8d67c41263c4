"""The compiled authorization path (grants, SQL predicates, cached decisions) agrees with
Casbin's own ``enforce`` over random policies, subjects and objects."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, MetaData, String, Table, create_engine, event, insert, select

from gateway.authz import Binding, PolicySet, Rule
from gateway.authz.patterns import obj_match, to_like

DOMAINS = ["data", "ops", "fin"]
ACTIONS = ["read", "trigger", "cancel"]
SUBJECTS = ["alice", "bob", "carol"]
ROLES = ["viewer", "operator", "special"]
SEGMENTS = ["airflow-prod", "cron-a", "finance_x", "etl_1", "nightly-db", "a_b", "x%y"]
PATTERNS = [
    "*",
    "airflow-prod/*",
    "*/nightly-*",
    "airflow-prod/finance_*",
    "cron-a/etl_?",
    "*/a_b",
    "cron-a/x%y",
    "*_*",
]

uids = st.builds(lambda a, b: f"{a}/{b}", st.sampled_from(SEGMENTS), st.sampled_from(SEGMENTS))
rules = st.builds(
    Rule,
    st.sampled_from(ROLES),
    st.sampled_from(["*", *DOMAINS]),
    st.sampled_from(PATTERNS),
    st.sampled_from(["*", *ACTIONS]),
    st.sampled_from(["allow", "allow", "deny"]),
)
bindings = st.builds(
    Binding, st.sampled_from(SUBJECTS), st.sampled_from(ROLES), st.sampled_from(["*", *DOMAINS])
)


def test_patterns() -> None:
    assert obj_match("airflow-prod/finance_a/b", "airflow-prod/finance_*")
    assert obj_match("x/nightly-db", "*/nightly-*")
    assert not obj_match("x/daily-db", "*/nightly-*")
    assert obj_match("cron-a/etl_1", "cron-a/etl_?")
    assert not obj_match("cron-a/etl_12", "cron-a/etl_?")
    assert to_like("a_b%*?") == "a\\_b\\%%_"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(rules, min_size=1, max_size=12),
    st.lists(bindings, min_size=0, max_size=6),
    st.lists(
        st.tuples(
            st.sampled_from(SUBJECTS), st.sampled_from(DOMAINS), uids, st.sampled_from(ACTIONS)
        ),
        min_size=1,
        max_size=15,
    ),
)
def test_compiled_decisions_agree_with_casbin(
    rs: list[Rule], bs: list[Binding], requests: list[tuple[str, str, str, str]]
) -> None:
    policy = PolicySet(rs, bs)
    for sub, dom, obj, act in requests:
        assert policy.decide(sub, dom, obj, act).allowed == policy.enforce(sub, dom, obj, act), (
            sub,
            dom,
            obj,
            act,
            [r.line() for r in policy.rules],
            [b.line() for b in policy.bindings],
        )


_engine = create_engine("sqlite://")
event.listen(_engine, "connect", lambda c, _r: c.execute("PRAGMA case_sensitive_like=ON"))
_md = MetaData()
_jobs = Table("jobs", _md, Column("uid", String, primary_key=True), Column("domain", String))
_md.create_all(_engine)
_ROWS = [{"uid": f"{a}/{b}", "domain": d} for a in SEGMENTS for b in SEGMENTS for d in DOMAINS[:1]]
_ROWS = [{"uid": r["uid"], "domain": DOMAINS[i % 3]} for i, r in enumerate(_ROWS)]
with _engine.begin() as _c:
    _c.execute(insert(_jobs), _ROWS)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(rules, min_size=1, max_size=10),
    st.lists(bindings, max_size=6),
    st.sampled_from(SUBJECTS),
    st.sampled_from(ACTIONS),
)
def test_sql_predicate_selects_exactly_what_casbin_allows(
    rs: list[Rule], bs: list[Binding], sub: str, act: str
) -> None:
    policy = PolicySet(rs, bs)
    pred = policy.grants(sub).predicate(act, _jobs.c.domain, _jobs.c.uid)
    with _engine.connect() as c:
        got = {r.uid for r in c.execute(select(_jobs.c.uid).where(pred))}
    want = {r["uid"] for r in _ROWS if policy.enforce(sub, r["domain"], r["uid"], act)}
    assert got == want
