"""README.md's "Walk-through with curl" and "plan2learn master data" run as written.

The ```sh blocks of those two sections are read from the README, each command is parsed the way
a POSIX shell would (quotes, ``$VAR``, ``$(...)``, backslash-newline), and every curl request is
sent in order through the Flask test client against the demo tenant of ``scim-server demo``.
Variables the README captures (``ID=$(curl ... | python3 -c '...')``) are captured by running the
README's own python snippet on the response, so a wrong snippet fails here too.
"""
from __future__ import annotations

import random
import re
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scim_server import demo
from scim_server.storage import tenants

README = Path(__file__).resolve().parent.parent / "README.md"
SECTIONS = ("Walk-through with curl", "plan2learn master data")
CAPTURED = ("ID", "GID", "DEPT_ID", "UNIT_ID", "MANAGER_ID")


def section_blocks(markdown: str, title: str) -> list[str]:
    """The ```sh blocks of the section ``title``, up to the next heading of any level (the
    walk-through's sub-sections, such as cursor paging, are not part of it)."""
    blocks: list[str] = []
    inside, fence, current = False, None, None
    for line in markdown.splitlines(keepends=True):
        if fence is not None:
            if line.startswith("```"):
                if fence == "sh" and inside:
                    blocks.append(current)
                fence = None
            else:
                current += line
        elif line.startswith("```"):
            fence, current = line[3:].strip(), ""
        elif re.match(r"#+ ", line):
            inside = line.lstrip("#").strip() == title
    assert fence is None, "unclosed code block in README"
    return blocks


# ------------------------------------------------------------------ a small shell parser

@dataclass
class Word:
    text: str = ""
    started: bool = False  # an empty quoted word ('') is still a word


@dataclass
class Command:
    words: list[str] = field(default_factory=list)


class Shell:
    """Just enough of sh for the README: assignments, quoting, $VAR, $(cmd | python3 -c '...')."""

    def __init__(self, run_curl):
        self.vars: dict[str, str] = {}
        self.run_curl = run_curl  # (argv) -> response body text

    def run(self, script: str) -> None:
        for words, assignment in self._statements(script):
            if assignment is not None:
                name, value = assignment
                self.vars[name] = value
            elif words:
                self._execute(words)

    # parsing ----------------------------------------------------------------
    def _statements(self, script: str):
        i, n = 0, len(script)
        words: list[str] = []
        word = Word()
        assignment = None

        def finish_word():
            nonlocal word
            if word.started:
                words.append(word.text)
            word = Word()

        def finish_statement():
            nonlocal words, assignment
            finish_word()
            result = (words, assignment)
            words, assignment = [], None
            return result

        while i < n:
            c = script[i]
            if c == "\\" and i + 1 < n and script[i + 1] == "\n":
                i += 2
            elif c == "\n" or c == ";":
                yield finish_statement()
                i += 1
            elif c in " \t":
                finish_word()
                i += 1
            elif c == "#" and not word.started:
                while i < n and script[i] != "\n":
                    i += 1
            elif c == "'":
                end = script.index("'", i + 1)
                word.text += script[i + 1:end]
                word.started = True
                i = end + 1
            elif c == '"':
                i = self._double_quoted(script, i + 1, word)
            elif c == "$":
                text, i = self._expansion(script, i)
                word.text += text
                word.started = True
            elif c == "=" and not words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", word.text):
                name = word.text
                value = Word(started=True)
                i += 1
                while i < n and script[i] not in " \t\n;":
                    if script[i] == "'":
                        end = script.index("'", i + 1)
                        value.text += script[i + 1:end]
                        i = end + 1
                    elif script[i] == '"':
                        i = self._double_quoted(script, i + 1, value)
                    elif script[i] == "$":
                        text, i = self._expansion(script, i)
                        value.text += text
                    else:
                        value.text += script[i]
                        i += 1
                assignment = (name, value.text)
                word = Word()
            else:
                word.text += c
                word.started = True
                i += 1
        yield finish_statement()

    def _double_quoted(self, script: str, i: int, word: Word) -> int:
        word.started = True
        while script[i] != '"':
            c = script[i]
            if c == "\\" and script[i + 1] in '"\\$`':
                word.text += script[i + 1]
                i += 2
            elif c == "$":
                text, i = self._expansion(script, i)
                word.text += text
            else:
                word.text += c
                i += 1
        return i + 1

    def _expansion(self, script: str, i: int) -> tuple[str, int]:
        if script.startswith("$(", i):
            depth, j, quote = 1, i + 2, None
            while depth:
                c = script[j]
                if quote == '"' and c == "\\":
                    j += 2
                    continue
                if quote:
                    quote = None if c == quote else quote
                elif c in "'\"":
                    quote = c
                elif c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                j += 1
            return self._substitute(script[i + 2:j - 1]), j
        match = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))").match(script, i)
        assert match, f"unsupported expansion at {script[i:i + 20]!r}"
        name = match.group(1) or match.group(2)
        assert name in self.vars, f"the README uses ${name} before it sets it"
        return self.vars[name], match.end()

    # running ----------------------------------------------------------------
    def _substitute(self, inner: str) -> str:
        """``$(curl ... | python3 -c 'code')``: the curl response piped into the README's snippet."""
        stages = self._pipeline(inner)
        output = None
        for words in stages:
            if words[0] == "curl":
                output = self.run_curl(words)
            elif words[:2] == ["python3", "-c"]:
                done = subprocess.run([sys.executable, "-c", words[2]], input=output, capture_output=True,
                                      text=True, timeout=30)
                assert done.returncode == 0, (words[2], output, done.stderr)
                output = done.stdout
            else:
                raise AssertionError(f"unsupported command in $(...): {words}")
        return (output or "").rstrip("\n")

    def _pipeline(self, inner: str) -> list[list[str]]:
        stages, current = [], []
        statements = [w for w, a in self._statements(inner.replace("|", "\n|\n")) if w]
        # "|" inside quotes would be split wrongly above; the README's snippets have none
        for words in statements:
            if words == ["|"]:
                stages.append(current)
                current = []
            else:
                current += words
        stages.append(current)
        return stages

    def _execute(self, words: list[str]) -> None:
        assert words[0] == "curl", f"unsupported command in the README: {words}"
        self.run_curl(words)


@dataclass
class CurlRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: str | None


def parse_curl(argv: list[str]) -> CurlRequest:
    method, url, data, encoded, get = None, None, None, [], False
    headers: dict[str, str] = {}
    args = iter(argv[1:])
    for arg in args:
        if arg == "-s":
            continue
        if arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-X":
            method = next(args)
        elif arg in ("-d", "--data"):
            data = next(args)
        elif arg == "--data-urlencode":
            name, _, content = next(args).partition("=")
            encoded.append(f"{name}={urllib.parse.quote(content, safe='')}")
        elif arg == "--get":
            get = True
        elif arg.startswith("-"):
            raise AssertionError(f"curl option the test does not know: {arg}")
        else:
            assert url is None, f"two URLs in one curl: {argv}"
            url = arg
    assert url, argv
    parts = urllib.parse.urlsplit(url)
    query = "&".join(q for q in [parts.query, *encoded] if q)
    if method is None:
        method = "POST" if data is not None and not get else "GET"
    return CurlRequest(method, parts.path + (f"?{query}" if query else ""), headers, data)


# ------------------------------------------------------------------ the test


@pytest.fixture
def demo_token(app):
    """The demo tenant as ``scim-server demo`` makes it, with few employees to stay quick."""
    with app.extensions["scim_sessions"].begin() as session:
        tenant = tenants.create_tenant(session, "demo")
        demo.load(session, tenant.id, employees=150, externals=10)
        return tenants.create_token(session, tenant, description="README walk-through")


def test_readme_blocks_are_found():
    markdown = README.read_text(encoding="utf-8")
    for title in SECTIONS:
        assert section_blocks(markdown, title), f"no ```sh block under {title!r}"


def test_readme_walkthrough_runs_as_written(app, demo_token):
    markdown = README.read_text(encoding="utf-8")
    http = app.test_client()
    sent: list[tuple[str, str, int]] = []

    def run_curl(argv: list[str]) -> str:
        request = parse_curl(argv)
        assert request.path.startswith("/scim/v2/"), request.path
        response = http.open(request.path, method=request.method, headers=request.headers,
                             data=request.body.encode("utf-8") if request.body is not None else None)
        text = response.get_data(as_text=True)
        assert 200 <= response.status_code < 300, (request.method, request.path, request.body,
                                                   response.status_code, text)
        sent.append((request.method, request.path, response.status_code))
        return text

    shell = Shell(run_curl)
    shell.vars["TOKEN"] = demo_token
    for title in SECTIONS:
        for block in section_blocks(markdown, title):
            shell.run(block)

    for name in CAPTURED:
        assert re.fullmatch(r"[0-9a-f-]{36}", shell.vars.get(name, "")), (name, shell.vars.get(name))
    methods = [m for m, _, _ in sent]
    assert methods.count("POST") >= 3 and methods.count("PATCH") >= 4, sent

    # what the walk-through did is what it says it did
    auth = {"Authorization": f"Bearer {demo_token}"}
    user = http.get(f"/scim/v2/Users/{shell.vars['ID']}", headers=auth).get_json()
    p2l = user["urn:ietf:params:scim:schemas:extension:plan2learn:2.0:User"]
    employment = next(e for e in p2l["employments"] if e["value"] == shell.vars["UNIT_ID"])
    assert employment["endDate"].startswith("2026-12-31")
    assert shell.vars["MANAGER_ID"] in [m["value"] for m in p2l["managerChain"]]
    assert shell.vars["DEPT_ID"] in [u["value"] for u in p2l["orgUnits"]]
    group = http.get(f"/scim/v2/Groups/{shell.vars['GID']}?attributes=members", headers=auth).get_json()
    assert [m["value"] for m in group["members"]] == [shell.vars["ID"]]


def test_readme_sample_ean_and_unit_code_fit_the_demo():
    from stdnum import ean

    markdown = README.read_text(encoding="utf-8")
    blocks = "\n".join(section_blocks(markdown, "plan2learn master data"))
    eans = re.findall(r'"ean": "(\d+)"', blocks)
    assert eans and all(ean.is_valid(value) for value in eans), eans
    codes = re.findall(r'"unitCode": "([^"]+)"', blocks)
    demo_codes = {u.code.lower() for u in demo._walk(demo._units(random.Random(2026)))}
    assert codes and not {c.lower() for c in codes} & demo_codes, codes
