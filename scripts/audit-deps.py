#!/usr/bin/env python3
"""Supply-chain check for .ci/run: pip-audit over the locked Python dependencies and
``npm audit --omit=dev`` over the console's packages.

A known vulnerability with a fixed version available fails the run (exit 1); the others
are listed. When a vulnerability database cannot be reached (no network to PyPI's JSON API
or to the npm advisory endpoint), the check says so plainly and does not fail the run:
nothing was audited, which is not the same as nothing found.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python() -> tuple[list[str], list[str], bool]:
    """(must fix, listed, audited)"""
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        subprocess.run(
            [
                "uv",
                "export",
                "--frozen",
                "--no-dev",
                "--no-hashes",
                "--no-emit-project",
                "-q",
                "-o",
                str(req),
            ],
            cwd=ROOT,
            check=True,
        )
        done = subprocess.run(
            [
                "uvx",
                "pip-audit",
                "-r",
                str(req),
                "--no-deps",
                "--disable-pip",
                "-f",
                "json",
                "--progress-spinner",
                "off",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        print(f"pip-audit: no report ({done.stderr.strip()[-300:]})")
        return [], [], False
    deps = report.get("dependencies", [])
    audited = [d for d in deps if "skip_reason" not in d]
    if deps and not audited:
        print(
            f"pip-audit: the vulnerability database was not reachable; "
            f"{len(deps)} packages NOT audited"
        )
        return [], [], False
    fix, listed = [], []
    for d in audited:
        for v in d.get("vulns", []):
            fixed = ", ".join(v["fix_versions"]) or "no release yet"
            line = f"{d['name']} {d['version']}: {v['id']} (fixed in {fixed})"
            (fix if v["fix_versions"] else listed).append(line)
    print(f"pip-audit: {len(audited)} packages audited, {len(deps) - len(audited)} skipped")
    return fix, listed, True


def _npm() -> tuple[list[str], list[str], bool]:
    web = ROOT / "web"
    if not (web / "package-lock.json").exists() or shutil.which("npm") is None:
        print("npm audit: no console packages or no npm; skipped")
        return [], [], False
    done = subprocess.run(
        ["npm", "audit", "--omit=dev", "--json"],
        cwd=web,
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = {}
    if "error" in report or "vulnerabilities" not in report:
        msg = (
            report.get("error", {}).get("summary")
            or report.get("message")
            or done.stderr.strip()[-300:]
        )
        print(f"npm audit: the advisory database was not reachable ({msg}); NOT audited")
        return [], [], False
    fix, listed = [], []
    for name, v in report["vulnerabilities"].items():
        line = f"{name} ({v.get('severity')}): {v.get('range')}"
        (fix if v.get("fixAvailable") else listed).append(line)
    print(f"npm audit: {len(report['vulnerabilities'])} vulnerable packages")
    return fix, listed, True


def main() -> int:
    fix, listed = [], []
    for check in (_python, _npm):
        must, known, _ = check()
        fix += must
        listed += known
    for line in listed:
        print(f"  known, no fix yet: {line}")
    for line in fix:
        print(f"  FIX AVAILABLE: {line}")
    if fix:
        print(f"{len(fix)} known vulnerabilities have a fix: upgrade them")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
