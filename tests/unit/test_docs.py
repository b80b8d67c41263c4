"""The user documentation shows what the code does.

* Every ``accord ...`` command line in a shell block of ``docs/*.md`` names a real
  command with real options: it is run through the real CLI app with ``--help``
  appended (exit code 0), and parsed completely, types and required arguments included,
  without running it. ``accord ...`` in inline code is checked with ``--help``.
* Every YAML example with ``apiVersion: accord.dev/v1`` validates with
  ``load_documents(..., check_secrets=False)``. A Source whose adapter type is not
  installed is left out only where the page marks the example with
  ``<!-- docs-test: needs-adapter TYPE -->`` on the line before the block; once that type
  is installed, the example is validated like any other.
* The reference pages cover every resource kind, CLI command, API endpoint and setting,
  mkdocs.yml lists every page, and the command lines in ``deploy/`` parse too.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.exceptions import TyperException
from typer.testing import CliRunner

from adapters.base import registry
from gateway.cli.app import app
from gateway.config import load_documents
from gateway.model.resources import API_VERSION, KINDS
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
DEPLOY = ROOT / "deploy"
PAGES = sorted(DOCS.glob("*.md"))
SHELL_LANGS = {"sh", "bash", "shell", "console"}
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_MARKER = re.compile(r"<!--\s*docs-test:\s*needs-adapter\s+([\w-]+)\s*-->")
_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "&>", "(", ")"}


@dataclass
class Block:
    page: str
    line: int
    lang: str
    text: str
    needs: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class CommandLine:
    where: str
    args: tuple[str, ...]
    strict: bool  # from a code block: parse completely, not only with --help


def _blocks(path: Path) -> tuple[list[Block], list[str]]:
    """Fenced blocks of a page, and the page's prose lines outside any block."""
    blocks: list[Block] = []
    prose: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            prose.append(lines[i])
            i += 1
            continue
        fence, lang = m.group(2), m.group(3).lower()
        previous = next((ln for ln in reversed(lines[:i]) if ln.strip()), "")
        needs = set(_MARKER.findall(previous))
        body: list[str] = []
        start = i + 1
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        assert i < len(lines), f"{path.name}:{start}: unclosed code block"
        indent = len(m.group(1))
        text = "\n".join(ln[indent:] if ln[:indent].isspace() else ln for ln in body)
        blocks.append(Block(path.name, start, lang, text, needs))
        i += 1
    return blocks, prose


def _logical_lines(text: str, console: bool) -> list[str]:
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = pending + raw
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        if console:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        out.append(line)
    return out


def _words(line: str) -> list[str]:
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = "#"
    return list(lex)


def accord_args(line: str) -> list[str] | None:
    """The arguments after ``accord`` in a shell line, or None if it runs no accord."""
    words = _words(line)
    commands: list[list[str]] = [[]]
    for w in words:
        if w in _OPERATORS:
            commands.append([])
        else:
            commands[-1].append(w)
    for cmd in commands:
        while cmd and _ASSIGN.match(cmd[0]):
            cmd = cmd[1:]
        if cmd[:2] == ["uv", "run"]:
            cmd = cmd[2:]
        if cmd and (cmd[0] == "accord" or cmd[0].endswith("/bin/accord")):
            return cmd[1:]
        if "--" in cmd:
            after = cmd[cmd.index("--") + 1 :]
            if after and after[0] == "accord":
                return after[1:]
        if cmd[:2] == ["docker", "compose"]:
            verbs = [i for i, w in enumerate(cmd) if w in ("exec", "run")]
            if verbs:
                rest = cmd[verbs[0] + 1 :]
                while rest and rest[0].startswith("-"):
                    rest = rest[1:]
                if len(rest) > 1 and rest[1] == "accord":
                    return rest[2:]
    return None


def _collect() -> tuple[list[CommandLine], list[Block]]:
    commands: list[CommandLine] = []
    yaml_blocks: list[Block] = []
    for page in PAGES:
        blocks, prose = _blocks(page)
        for b in blocks:
            if b.lang in SHELL_LANGS:
                for n, line in enumerate(_logical_lines(b.text, b.lang == "console")):
                    args = accord_args(line)
                    if args is not None:
                        where = f"{b.page}:{b.line}+{n}: {line.strip()}"
                        commands.append(CommandLine(where, tuple(args), strict=True))
            elif b.lang in ("yaml", "yml"):
                yaml_blocks.append(b)
        for line in prose:
            for span in re.findall(r"`([^`]+)`", line):
                if span.startswith(("accord ", "uv run accord ")):
                    args = accord_args(span)
                    assert args is not None
                    commands.append(CommandLine(f"{page.name}: `{span}`", tuple(args), False))
    return commands, yaml_blocks


COMMANDS, YAML_BLOCKS = _collect()


def _is_group(cmd: Any) -> bool:
    return hasattr(cmd, "commands")


def _resolve(args: tuple[str, ...], *, complete: bool = True) -> tuple[Any, Any, str, list[str]]:
    """Walk the command groups without running anything. Returns the command the
    arguments reach, its parent context, its name and the arguments left for it."""
    cmd: Any = typer.main.get_command(app)
    parent: Any = None
    name = "accord"
    rest = list(args)
    while _is_group(cmd) and rest and not rest[0].startswith("-"):
        ctx = cmd.context_class(cmd, info_name=name, parent=parent)
        sub = cmd.get_command(ctx, rest[0])
        assert sub is not None, f"'accord {' '.join(args)}': no command {rest[0]!r}"
        parent, name, cmd, rest = ctx, rest[0], sub, rest[1:]
    if complete:
        assert not _is_group(cmd), f"'accord {' '.join(args)}' is not a complete command"
    return cmd, parent, name, rest


def _parse(args: tuple[str, ...], where: str) -> None:
    """Parse completely (types, required and extra arguments) without running anything."""
    cmd, parent, name, rest = _resolve(args)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            cmd.make_context(name, rest, parent=parent)
    except typer.Exit as exc:  # the line itself asks for --help
        assert exc.exit_code == 0, where
    except TyperException as exc:  # the CLI's usage errors
        pytest.fail(f"{where}: {exc.format_message()}")


def _help_answers(args: tuple[str, ...], where: str) -> None:
    """``--help`` appended must reach the help option (not be taken as an option's value),
    so that invoking the line with it shows help and never runs the command."""
    cmd, parent, name, rest = _resolve(args, complete=False)
    if not cmd.add_help_option:
        # A pass-through command (``accord agent``) hands --help to the program it runs.
        from typer.testing import CliRunner

        from gateway.cli.app import app

        res = CliRunner().invoke(app, [*args, "--help"])
        assert res.exit_code == 0 and "usage" in res.output.lower(), (where, res.output)
        return
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            cmd.make_context(name, [*rest, "--help"], parent=parent)
    except typer.Exit as exc:  # what the help option raises after printing
        assert exc.exit_code == 0, where
        return
    except TyperException as exc:
        pytest.fail(f"{where}: {exc.format_message()}")
    pytest.fail(f"{where}: '--help' appended is taken as an argument, not as the help option")


def _leaf_paths() -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        if _is_group(cmd):
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))
        else:
            out.add(path)

    walk(typer.main.get_command(app), ())
    return out


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No command line may touch a real database, even by mistake."""
    for name in ("ACCORD_SERVER", "ACCORD_TOKEN", "ACCORD_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCORD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.mark.usefixtures("sandbox")
@pytest.mark.parametrize("command", COMMANDS, ids=[c.where for c in COMMANDS])
def test_command_line_parses_with_the_real_cli(command: CommandLine) -> None:
    _help_answers(command.args, command.where)
    result = CliRunner().invoke(app, [*command.args, "--help"])
    assert result.exit_code == 0, f"{command.where}\n{result.output}"
    if command.strict:
        _parse(command.args, command.where)


def _accord_documents(block: Block) -> list[Any]:
    try:
        docs = [d for d in yaml.safe_load_all(block.text) if d is not None]
    except yaml.YAMLError as exc:
        pytest.fail(f"{block.page}:{block.line}: not valid YAML: {exc}")
    if not any(isinstance(d, dict) and d.get("apiVersion") == API_VERSION for d in docs):
        return []
    return docs


def _is_accord_block(block: Block) -> bool:
    try:  # invalid YAML is reported by test_yaml_block_is_valid_yaml, not at collection
        docs = list(yaml.safe_load_all(block.text))
    except yaml.YAMLError:
        return False
    return any(isinstance(d, dict) and d.get("apiVersion") == API_VERSION for d in docs)


ACCORD_BLOCKS = [b for b in YAML_BLOCKS if _is_accord_block(b)]


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=[f"{b.page}:{b.line}" for b in YAML_BLOCKS])
def test_yaml_block_is_valid_yaml(block: Block) -> None:
    _accord_documents(block)


def _validate(block: Block) -> list[str]:
    """Validate a block's documents; return the kinds that were validated."""
    docs = _accord_documents(block)
    installed = set(registry.types())
    raw: list[tuple[str, int, Any]] = []
    used_types: set[str] = set()
    for i, doc in enumerate(docs, start=1):
        assert isinstance(doc, dict), f"{block.page}:{block.line}: document {i} is no mapping"
        spec = doc.get("spec")
        type_ = spec.get("type") if doc.get("kind") == "Source" and isinstance(spec, dict) else None
        used_types.add(str(type_))
        if type_ in block.needs and type_ not in installed:
            continue
        raw.append((f"{block.page}:{block.line}", i, doc))
    stale = block.needs - used_types
    assert not stale, f"{block.page}:{block.line}: marked for {stale}, which it does not use"
    result = load_documents(raw, check_secrets=False)
    assert result.ok, "\n".join(str(e) for e in result.errors)
    return [d.kind for d in result.documents]


@pytest.mark.parametrize("block", ACCORD_BLOCKS, ids=[f"{b.page}:{b.line}" for b in ACCORD_BLOCKS])
def test_accord_yaml_example_validates(block: Block) -> None:
    _validate(block)


def test_configuration_page_has_a_valid_example_of_every_kind() -> None:
    kinds: set[str] = set()
    for block in ACCORD_BLOCKS:
        if block.page == "configuration.md":
            kinds.update(_validate(block))
    assert kinds == set(KINDS), f"missing: {sorted(set(KINDS) - kinds)}"


def test_cli_page_shows_every_command() -> None:
    shown = {c.args for c in COMMANDS if c.where.startswith("cli.md") and c.strict}
    missing = [
        " ".join(path)
        for path in sorted(_leaf_paths())
        if not any(args[: len(path)] == path for args in shown)
    ]
    assert not missing, f"commands without an example in docs/cli.md: {missing}"


def test_api_page_names_every_endpoint(tmp_path: Path) -> None:
    from gateway.api.app import create_app

    application = create_app(
        Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'a.db'}"),
        start_sync=False,
    )
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    paths = application.openapi()["paths"]
    assert len(paths) > 20
    missing = []
    for path in paths:
        generic = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", path)
        if generic not in text and path not in text:
            missing.append(path)
    assert not missing, f"endpoints not in docs/api.md: {missing}"


def test_configuration_page_lists_every_setting() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [
        f"ACCORD_{n.upper()}" for n in Settings.model_fields if f"ACCORD_{n.upper()}" not in text
    ]
    assert not missing, f"settings not in docs/configuration.md: {missing}"


_GUIDE_FILES = {
    "class AcmeConfig(": "acme/config.py",
    "ACME_STATES: dict": "acme/states.py",
    "class AcmeClient:": "acme/client.py",
    "class AcmeAdapter(BaseAdapter):": "acme/adapter.py",
    "class FakeAcme:": "testing/harness_acme.py",
}


@pytest.mark.anyio
async def test_adapter_guide_example_passes_the_contract_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example adapter in writing-an-adapter.md, as printed, passes every check."""
    import importlib
    import sys

    import adapters
    import adapters.testing
    from adapters.testing.contract import CHECKS, harness_for

    text = (DOCS / "writing-an-adapter.md").read_text(encoding="utf-8")
    written = set()
    (tmp_path / "adapters" / "acme").mkdir(parents=True)
    (tmp_path / "adapters" / "testing").mkdir()
    (tmp_path / "adapters" / "acme" / "__init__.py").write_text("")
    for code in re.findall(r"```python\n(.*?)```", text, re.S):
        for marker, name in _GUIDE_FILES.items():
            if marker in code:
                (tmp_path / "adapters" / name).write_text(code)
                written.add(name)
    assert written == set(_GUIDE_FILES.values())
    monkeypatch.setattr(adapters, "__path__", [*adapters.__path__, str(tmp_path / "adapters")])
    monkeypatch.setattr(
        adapters.testing,
        "__path__",
        [*adapters.testing.__path__, str(tmp_path / "adapters" / "testing")],
    )
    try:
        importlib.invalidate_caches()
        for name, check in sorted(CHECKS.items()):
            async with harness_for("acme")() as h:
                try:
                    await check(h)
                except AssertionError as exc:
                    pytest.fail(f"contract check {name!r}: {exc}")
    finally:
        for mod in list(sys.modules):
            if mod.startswith(("adapters.acme", "adapters.testing.harness_acme")):
                del sys.modules[mod]


def _nav_files(node: Any) -> set[str]:
    if isinstance(node, str):
        return {node} if node.endswith(".md") else set()
    if isinstance(node, dict):
        return set().union(*(_nav_files(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_nav_files(v) for v in node))
    return set()


def test_mkdocs_nav_lists_every_page() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = _nav_files(config["nav"])
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages - nav == set(), f"pages missing from the nav: {sorted(pages - nav)}"


def _deploy_commands() -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("CMD ["):
            out.append(("Dockerfile CMD", json.loads(line[4:])))
    for line in (DEPLOY / "systemd" / "accord.service").read_text(encoding="utf-8").splitlines():
        if line.startswith(("ExecStart=", "ExecStartPre=")):
            out.append((line, shlex.split(line.split("=", 1)[1])))
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    for name, service in compose["services"].items():
        if "command" in service:
            out.append((f"compose.yaml {name}", [str(w) for w in service["command"]]))
    for tpl in sorted((DEPLOY / "helm" / "accord" / "templates").iterdir()):
        text = tpl.read_text(encoding="utf-8")
        for m in re.finditer(r'\(list ((?:"[^"]*"\s*)+)\)', text):
            words = re.findall(r'"([^"]*)"', m.group(1))
            if words[0] == "accord":
                out.append((f"{tpl.name}: {m.group(0)}", words))
        for m in re.finditer(r"command: (\[.*\])", text):
            out.append((f"{tpl.name}: {m.group(0)}", json.loads(m.group(1))))
        for m in re.finditer(r" -- (accord [^\n{]*)", text):
            out.append((f"{tpl.name}: {m.group(1)}", m.group(1).split()))
    return out


DEPLOY_COMMANDS = _deploy_commands()


@pytest.mark.usefixtures("sandbox")
@pytest.mark.parametrize("where,words", DEPLOY_COMMANDS, ids=[w for w, _ in DEPLOY_COMMANDS])
def test_deploy_command_parses_with_the_real_cli(where: str, words: list[str]) -> None:
    assert words[0] == "accord" or words[0].endswith("/bin/accord"), where
    _parse(tuple(words[1:]), where)


def test_deploy_yaml_files_parse() -> None:
    files = [DEPLOY / "compose.yaml", *(DEPLOY / "helm" / "accord").glob("*.yaml")]
    for f in files:
        assert yaml.safe_load(f.read_text(encoding="utf-8")), f


def test_the_docs_were_found() -> None:
    # Guards the collection above: a broken parser would otherwise check nothing.
    assert len(PAGES) >= 10
    assert len([c for c in COMMANDS if c.strict]) >= 60
    assert len(ACCORD_BLOCKS) >= 12
    assert len(DEPLOY_COMMANDS) >= 6


_README_ROW = re.compile(r"^\|\s*(.+?)\s*\|\s*(.*?)\s*\|\s*(.*?)\s*\|$")
_README_ENDPOINT = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)`")


def test_readme_api_section_matches_the_openapi_document(tmp_path: Path) -> None:
    """Every endpoint and query parameter the README's API table names exists, and every
    resource under /api/v1 has a row, so the README cannot drift from the API."""
    from gateway.api.app import create_app

    application = create_app(
        Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'a.db'}"),
        start_sync=False,
    )
    paths = application.openapi()["paths"]
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("\n## API\n") : text.index("\n## ", text.index("\n## API\n") + 1)]
    named: list[tuple[str, str, list[str]]] = []
    for line in section.splitlines():
        row = _README_ROW.match(line)
        if not row:
            continue
        params = [p.strip() for p in row.group(2).strip("`").split(",") if p.strip()]
        for method, path in _README_ENDPOINT.findall(row.group(1)):
            named.append((method.lower(), path, params))
    assert len(named) > 15
    wrong = []
    for method, path, params in named:
        op = paths.get(path, {}).get(method)
        if op is None:
            wrong.append(f"{method.upper()} {path}: not in the OpenAPI document")
            continue
        real = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        wrong += [
            f"{method.upper()} {path}: no query parameter {p!r}" for p in params if p not in real
        ]
    assert not wrong, wrong
    resources = {p.split("/")[3] for p in paths if p.startswith("/api/v1/")}
    covered = {p.split("/")[3] for _m, p, _q in named if p.startswith("/api/v1/")}
    assert resources - covered == set(), f"resources without a README row: {resources - covered}"
    for method, path, params in named:
        if method == "get" and path in ("/api/v1/jobs", "/api/v1/runs"):
            real = {p["name"] for p in paths[path]["get"]["parameters"] if p["in"] == "query"}
            assert set(params) == real, f"{path}: README lists {params}, the API has {real}"


def test_readme_says_what_make_test_changes_on_the_machine() -> None:
    """``make test`` edits system files and leaves daemons running; the README says which,
    next to the command, so nobody runs it on a machine they care about unawares."""
    script = (ROOT / "scripts" / "cron-setup.sh").read_text(encoding="utf-8")
    written = set(re.findall(r"(?:sed -i [^\n]*?|tee (?:-a )?)(/etc/[\w./-]+)", script))
    assert "/etc/default/cron" in written
    started = set(re.findall(r"\$SUDO /usr/sbin/(\w+)", script)) | set(
        re.findall(r"starting (\w+)", script)
    )
    assert {"rsyslogd", "cron"} <= started
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    make_test = text.index("make test\n```")
    note = text[make_test : text.index("\n## ", make_test)]
    missing = [w for w in sorted(written) if f"`{w}`" not in note]
    missing += [d for d in ("cron", "rsyslog") if f"`{d}`" not in note]
    assert not missing, f"README's make test note does not name: {missing}"
    assert "keep running" in note
