"""The simulator's ``tree=`` pruner behaves like Stapler's NamedPathPruner."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.testing.jenkins_sim import (
    TreeSyntaxError,
    parse_tree,
    render_depth,
    render_tree,
)
from adapters.testing.jenkins_sim.tree import Exported


def _build(n: int) -> Exported:
    return Exported(
        "hudson.model.FreeStyleBuild",
        lambda: {"number": n, "result": "SUCCESS", "url": f"u/{n}/"},
        summary=("number", "url"),
    )


def _job() -> Exported:
    builds = [_build(n) for n in (5, 4, 3, 2, 1)]

    def props() -> dict[str, Any]:
        return {
            "name": "app",
            "color": "blue",
            "builds": builds,
            "allBuilds": builds,
            "lastBuild": builds[0],
        }

    return Exported(
        "hudson.model.FreeStyleProject",
        props,
        summary=("name", "color"),
        hidden=frozenset({"allBuilds"}),
    )


def _root() -> Exported:
    return Exported("hudson.model.Hudson", lambda: {"jobs": [_job()], "mode": "NORMAL"})


def test_nested_selection_keeps_only_named_fields_and_class() -> None:
    out = render_tree(_root(), parse_tree("jobs[name,builds[number]]"))
    assert out == {
        "_class": "hudson.model.Hudson",
        "jobs": [
            {
                "_class": "hudson.model.FreeStyleProject",
                "name": "app",
                "builds": [
                    {"_class": "hudson.model.FreeStyleBuild", "number": n} for n in (5, 4, 3, 2, 1)
                ],
            }
        ],
    }


@pytest.mark.parametrize(
    ("rng", "numbers"),
    [("{0,2}", [5, 4]), ("{1,3}", [4, 3]), ("{2}", [3]), ("{,1}", [5]), ("{3,}", [2, 1])],
)
def test_ranges_cut_lists(rng: str, numbers: list[int]) -> None:
    out = render_tree(_job(), parse_tree(f"builds[number]{rng}"))
    assert [b["number"] for b in out["builds"]] == numbers


def test_object_without_subselection_is_class_only_and_wildcard_selects_all() -> None:
    out = render_tree(_job(), parse_tree("lastBuild,name"))
    assert out["lastBuild"] == {"_class": "hudson.model.FreeStyleBuild"}
    every = render_tree(_job(), parse_tree("*"))
    assert set(every) == {"_class", "name", "color", "builds", "lastBuild"}  # not allBuilds
    named = render_tree(_job(), parse_tree("allBuilds[number]{0,1}"))
    assert named["allBuilds"] == [{"_class": "hudson.model.FreeStyleBuild", "number": 5}]


def test_unknown_fields_are_left_out() -> None:
    assert render_tree(_job(), parse_tree("nope,name")) == {
        "_class": "hudson.model.FreeStyleProject",
        "name": "app",
    }


@pytest.mark.parametrize("bad", ["", "jobs[name", "jobs]", "a,,b", "builds{x}", "a{1,2", "[a]"])
def test_syntax_errors(bad: str) -> None:
    with pytest.raises(TreeSyntaxError):
        parse_tree(bad)


def test_depth_renders_full_objects_then_summaries() -> None:
    shallow = render_depth(_root(), 0)
    assert shallow["jobs"] == [
        {"_class": "hudson.model.FreeStyleProject", "name": "app", "color": "blue"}
    ]
    deeper = render_depth(_root(), 1)
    job = deeper["jobs"][0]
    assert "allBuilds" not in job
    assert job["builds"][0] == {"_class": "hudson.model.FreeStyleBuild", "number": 5, "url": "u/5/"}
