"""The documentation's examples run and its links resolve, so README.md and docs/*.md cannot rot.

Convention (also in docs/architecture.md): every fenced ```bash or ```python block sits on the line right after one
of three marks, and a block without one fails the suite:

- ``<!-- doctest: run -->``: fast (seconds); run by default, each block in a fresh temporary directory with
  ``JAX_PLATFORMS=cpu`` and this interpreter's ``chinchilla`` first on PATH; it must exit 0.
- ``<!-- doctest: slow -->``: trains or bootstraps (up to minutes); run with ``CHINCHILLA_DOC_EXAMPLES=all``, a
  file's slow blocks in order in one temporary directory (a later block may use an earlier one's runs).
- ``<!-- doctest: skip REASON -->``: cannot run here (other machines, accelerators, the network, hours); the reason
  is required.

Blocks that are not run must still pass ``bash -n`` or compile. Other fences (```text transcripts, ```yaml, ...)
are not checked. Every relative link must name an existing file, and a ``#fragment`` into a Markdown file one of
its headings (GitHub's anchors).
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
MARK = re.compile(r"^<!-- doctest: (?P<kind>[a-z]+)(?:\s+(?P<reason>.*?))?\s*-->$")
KINDS = ("run", "slow", "skip")
CHECKED = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\((?P<target><[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\)")
RUN_TIMEOUT_S = 120
SLOW_TIMEOUT_S = 1200
RUN_SLOW = os.environ.get("CHINCHILLA_DOC_EXAMPLES") == "all"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclasses.dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str  # "bash" or "python" (checked kinds only)
    code: str
    kind: str | None  # the mark's: "run", "slow", "skip", another word (an error), or None (unmarked: an error)
    reason: str  # a skip's reason

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def fenced_blocks(path: Path) -> list[tuple[int, str, str, re.Match | None]]:
    """(line, info string, dedented body, the doctest mark right above or None) of every fenced block of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        marked = MARK.match(lines[i - 1].strip()) if i > 0 else None
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
        for line, lang, code, mark in fenced_blocks(path):
            if lang in CHECKED:
                kind, reason = (mark["kind"], mark["reason"] or "") if mark else (None, "")
                out.append(Block(path, line, CHECKED[lang], code, kind, reason))
    return out


BLOCKS = all_blocks()


def test_every_example_is_marked_run_slow_or_skip_with_a_reason():
    """No example is left out of the runs by accident: each says how it is tested (or why it is not)."""
    problems = []
    for b in BLOCKS:
        if b.kind not in KINDS:
            problems.append(f"{b.id}: put <!-- doctest: run|slow|skip REASON --> on the line above (found {b.kind!r})")
        elif (b.kind == "skip") != bool(b.reason):
            problems.append(f"{b.id}: {'a skip needs a reason' if b.kind == 'skip' else 'only skip takes a reason'}")
    assert not problems, "\n".join(problems)


def test_marks_sit_on_checked_blocks():
    """A mark is followed by a ```bash or ```python fence, so no marked example is silently skipped."""
    problems = []
    for path in doc_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        marked_lines = {b.line for b in BLOCKS if b.path == path and b.kind is not None}
        for i, text in enumerate(lines):
            if MARK.match(text.strip()) and (i + 2) not in marked_lines:
                problems.append(
                    f"{path.relative_to(ROOT)}:{i + 1}: {text.strip()} is not right above a bash/python fence"
                )
    assert not problems, "\n".join(problems)


def test_some_examples_run():
    assert any(b.kind == "run" and b.path.name == "README.md" for b in BLOCKS)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind != "run"], ids=lambda b: b.id)
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


def run_block(block: Block, directory: Path, timeout_s: float) -> None:
    """Runs ``block`` in ``directory``; AssertionError with its code and output unless it exits 0."""
    script = directory / f"example-{block.line}.{'py' if block.lang == 'python' else 'sh'}"
    script.write_text(block.code, encoding="utf-8")
    argv = [sys.executable, str(script)] if block.lang == "python" else ["bash", "-e", "-o", "pipefail", str(script)]
    result = subprocess.run(argv, cwd=directory, env=_env(), capture_output=True, text=True, timeout=timeout_s)
    script.unlink()
    assert result.returncode == 0, (
        f"{block.id} exited {result.returncode}\n--- code\n{block.code}"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "run"], ids=lambda b: b.id)
def test_example_runs(block: Block, tmp_path: Path):
    run_block(block, tmp_path, RUN_TIMEOUT_S)


@pytest.mark.slow
@pytest.mark.skipif(not RUN_SLOW, reason="slow documentation examples run with CHINCHILLA_DOC_EXAMPLES=all")
@pytest.mark.parametrize(
    "path", sorted({b.path for b in BLOCKS if b.kind == "slow"}), ids=lambda p: str(p.relative_to(ROOT))
)
def test_slow_examples_run_in_order(path: Path, tmp_path: Path):
    for block in (b for b in BLOCKS if b.path == path and b.kind == "slow"):
        run_block(block, tmp_path, SLOW_TIMEOUT_S)


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
