"""The Jenkins simulator speaks Jenkins to an independent client (python-jenkins)."""

from __future__ import annotations

import jenkins
import pytest
import requests

from adapters.testing.jenkins_sim import JenkinsSimulator, SimState, cause_timer

from .conftest import PASSWORD, TOKEN


@pytest.fixture
def seeded(state: SimState, sim: JenkinsSimulator) -> JenkinsSimulator:
    state.add_job("team/app/build", spec="H 2 * * *", parameters={"BRANCH": "main"})
    state.add_job("team/app/deploy", "pipeline", stages=["Plan", "Apply"])
    state.add_branch("team/web", "feature/x")
    state.run("team/app/build", "SUCCESS", cause=cause_timer())
    return sim


def test_python_jenkins_lists_jobs_and_reads_builds(seeded: JenkinsSimulator) -> None:
    server = jenkins.Jenkins(seeded.url, username="alice", password=PASSWORD, timeout=10)
    assert server.get_whoami()["id"] == "alice"
    assert server.get_version() == seeded.state.version
    names = {j["fullname"] for j in server.get_all_jobs()}
    assert {"team/app/build", "team/app/deploy", "team/web/feature%2Fx"} <= names
    info = server.get_build_info("team/app/build", 1)
    assert info["result"] == "SUCCESS"
    assert info["actions"][0]["causes"][0]["shortDescription"] == "Started by timer"
    assert "<spec>H 2 * * *</spec>" in server.get_job_config("team/app/build")


def test_python_jenkins_triggers_follows_queue_and_crumbs(seeded: JenkinsSimulator) -> None:
    state = seeded.state
    server = jenkins.Jenkins(seeded.url, username="alice", password=PASSWORD, timeout=10)
    qid = server.build_job("team/app/build", {"BRANCH": "dev"})  # POST with a crumb
    item = server.get_queue_item(qid)
    assert item["_class"] == "hudson.model.Queue$BuildableItem"
    assert item["why"] == "Waiting for next available executor"
    build = state.start(qid)
    assert build is not None and build.params == {"BRANCH": "dev"}
    left = server.get_queue_item(qid)
    assert left["executable"]["number"] == build.number
    stages = server.get_build_stages("team/app/deploy", state.run("team/app/deploy").number)
    assert [s["name"] for s in stages["stages"]] == ["Plan", "Apply"]
    server.disable_job("team/app/deploy")
    assert server.get_job_info("team/app/deploy")["color"] == "disabled"


def test_post_without_crumb_is_refused_for_passwords_not_tokens(
    seeded: JenkinsSimulator,
) -> None:
    url = f"{seeded.url}/job/team/job/app/job/build/build"
    refused = requests.post(url, auth=("alice", PASSWORD), timeout=10)
    assert refused.status_code == 403
    assert "No valid crumb was included in the request" in refused.text
    accepted = requests.post(url, auth=("accord", TOKEN), timeout=10, allow_redirects=False)
    assert accepted.status_code == 201
    assert accepted.headers["Location"].startswith(f"{seeded.url}/queue/item/")


def test_auth_and_labels(seeded: JenkinsSimulator) -> None:
    anonymous = requests.get(f"{seeded.url}/api/json", timeout=10)
    assert anonymous.status_code == 403
    wrong = requests.get(f"{seeded.url}/api/json", auth=("alice", "nope"), timeout=10)
    assert wrong.status_code == 401
    ok = requests.get(f"{seeded.url}/api/json", auth=("accord", TOKEN), timeout=10)
    assert ok.headers["X-Jenkins"] == seeded.state.version
    assert "simulator" in ok.headers["X-Jenkins-Simulator"].lower()
    assert "simulator" in ok.json()["description"].lower()


def test_tree_errors_and_left_items_expire(seeded: JenkinsSimulator) -> None:
    auth = ("accord", TOKEN)
    bad = requests.get(
        f"{seeded.url}/api/json", params={"tree": "jobs[name"}, auth=auth, timeout=10
    )
    assert bad.status_code == 400
    state = seeded.state
    item, _ = state.enqueue("team/app/build")
    state.start(item.id)
    url = f"{seeded.url}/queue/item/{item.id}/api/json"
    assert requests.get(url, auth=auth, timeout=10).status_code == 200
    state.advance(301)
    assert requests.get(url, auth=auth, timeout=10).status_code == 404
