"""The documentation's examples run and its links resolve, so README.md and docs/*.md cannot rot.

Convention (also in docs/architecture.md): a fenced ```bash or ```python block on the line right after
``<!-- doctest: run -->`` is run, in a fresh temporary directory with ``JAX_PLATFORMS=cpu`` and this interpreter's
``chinchilla`` first on PATH, and must exit 0. Every other ```bash block must pass ``bash -n`` and every other
```python block must compile. Other fences (```text transcripts, ```yaml, ...) are not checked. Every relative link
must name an existing file, and a ``#fragment`` into a Markdown file one of its headings (GitHub's anchors).
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_MARK = "<!-- doctest: run -->"
CHECKED = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\((?P<target><[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\)")
RUN_TIMEOUT_S = 120


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclasses.dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str  # "bash" or "python" (checked kinds only)
    code: str
    run: bool

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def fenced_blocks(path: Path) -> list[tuple[int, str, str, bool]]:
    """(line, info string, dedented body, marked to run) of every fenced block of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        marked = i > 0 and lines[i - 1].strip() == RUN_MARK
        body, j = [], i + 1
        while j < len(lines):
            close = FENCE.match(lines[j])
            if (
                close
                and close["fence"][0] == fence[0]
                and len(close["fence"]) >= len(fence)
                and not close["info"].strip()
            ):
                break
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        else:
            raise AssertionError(f"{path.relative_to(ROOT)}:{i + 1}: fence never closed")
        blocks.append((i + 1, info.split()[0].lower() if info else "", "\n".join(body) + "\n", marked))
        i = j + 1
    return blocks


def all_blocks() -> list[Block]:
    out = []
    for path in doc_files():
        for line, lang, code, marked in fenced_blocks(path):
            if lang in CHECKED:
                out.append(Block(path, line, CHECKED[lang], code, marked))
    return out


BLOCKS = all_blocks()


def test_run_marks_sit_on_checked_blocks():
    """A run mark is followed by a ```bash or ```python fence, so no marked example is silently skipped."""
    problems = []
    for path in doc_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        marked_lines = {b.line for b in BLOCKS if b.path == path and b.run}
        for i, text in enumerate(lines):
            if text.strip() == RUN_MARK and (i + 2) not in marked_lines:
                problems.append(f"{path.relative_to(ROOT)}:{i + 1}: {RUN_MARK} is not right above a bash/python fence")
    assert not problems, "\n".join(problems)


def test_some_examples_run():
    assert any(b.run and b.path.name == "README.md" for b in BLOCKS)


@pytest.mark.parametrize("block", [b for b in BLOCKS if not b.run], ids=lambda b: b.id)
def test_example_parses(block: Block):
    if block.lang == "python":
        compile(block.code, block.id, "exec")
    else:
        result = subprocess.run(["bash", "-n"], input=block.code, capture_output=True, text=True)
        assert result.returncode == 0, f"{block.id}: bash -n: {result.stderr}"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("CHINCHILLA_TENSORBOARD", None)
    return env


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.run], ids=lambda b: b.id)
def test_example_runs(block: Block, tmp_path: Path):
    script = tmp_path / ("example.py" if block.lang == "python" else "example.sh")
    script.write_text(block.code, encoding="utf-8")
    argv = [sys.executable, str(script)] if block.lang == "python" else ["bash", "-e", "-o", "pipefail", str(script)]
    result = subprocess.run(argv, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, (
        f"{block.id} exited {result.returncode}\n--- code\n{block.code}"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )


def github_anchor(heading: str) -> str:
    """GitHub's id for a Markdown heading: lower case, punctuation other than '-' and '_' dropped, spaces -> '-'."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    in_fence = False
    for text in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(text):
            in_fence = not in_fence
            continue
        m = None if in_fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", text)
        if m:
            base = github_anchor(m[1])
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def prose(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines outside fenced blocks, inline code and HTML comments blanked."""
    out, in_fence = [], False
    text = re.sub(r"<!--.*?-->", lambda m: "\n" * m[0].count("\n"), path.read_text(encoding="utf-8"), flags=re.S)
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            out.append((n, re.sub(r"(`+).*?\1", "", line)))
    return out


def relative_links(path: Path) -> list[tuple[int, str]]:
    links = []
    for n, line in prose(path):
        for m in LINK.finditer(line):
            target = m["target"].strip("<>")
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:, ...
                continue
            links.append((n, target))
    return links


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path):
    problems = []
    for n, target in relative_links(path):
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{n}: ({target})"
        if not dest.exists():
            problems.append(f"{where}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            problems.append(f"{where}: no heading with anchor #{fragment} in {dest.name}")
    assert not problems, "\n".join(problems)


def test_anchor_rule():
    assert github_anchor("Filters (`--where`) and errors in `--json`") == "filters---where-and-errors-in---json"
    assert github_anchor("Allocations outside a law's domain") == "allocations-outside-a-laws-domain"
    assert github_anchor("Memory: the planner") == "memory-the-planner"
