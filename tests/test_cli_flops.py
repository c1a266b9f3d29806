"""`chinchilla flops` as the README writes it, on a full shape given by flags, and the CI script's exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chinchilla import flops, zoo
from chinchilla.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("chinchilla")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "chinchilla.cli"]
    return subprocess.run(command + list(args), capture_output=True, text=True, timeout=120)


def test_flops_json_of_a_shape_given_by_flags():
    result = run_cli(
        "flops",
        "--n-layers",
        "10",
        "--d-model",
        "640",
        "--ffw-size",
        "2560",
        "--n-heads",
        "10",
        "--kv-size",
        "64",
        "--vocab-size",
        "32000",
        "--seq-len",
        "2048",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    for key in (
        "params",
        "non_embedding_params",
        "forward_flops_per_sequence",
        "training_flops_per_sequence",
        "table_a4_ratio",
    ):
        assert key in info
    assert info["training_flops_per_sequence"] == 3 * info["forward_flops_per_sequence"]
    assert round(info["table_a4_ratio"], 2) == 1.03
    assert info["table_a4_flops_per_sequence"] == 929_877_196_800


@pytest.mark.parametrize("ladder", ["chinchilla", "tiny", "gpu"])
def test_flops_zoo_json_lists_the_ladder_smallest_first(ladder, capsys):
    assert main(["flops", "--zoo", ladder, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == [c.name for c in zoo.ladder(ladder)]
    for row in rows:
        assert {"name", "d_model", "ffw_size", "kv_size", "n_heads", "n_layers", "params"} <= set(row)
        assert row["params"] == flops.param_count(zoo.get_model(row["name"])).total
    assert [r["params"] for r in rows] == sorted(r["params"] for r in rows)


def test_flops_table_output_is_readable(capsys):
    assert main(["flops", "--model", "tiny-00025k"]) == 0
    out = capsys.readouterr().out
    assert "non_embedding_params" in out and "24,736" in out


def test_flops_bad_shape_is_one_clear_line(capsys):
    code = main(["flops", "--n-layers", "2", "--d-model", "0", "--ffw-size", "8", "--n-heads", "1", "--kv-size", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "d_model=0 must be positive" in err and "Traceback" not in err


def test_flops_missing_fields_named(capsys):
    assert main(["flops", "--n-layers", "2"]) == 2
    assert "--d-model" in capsys.readouterr().err


@pytest.mark.parametrize("pytest_exit, ci_fails", [(0, False), (1, True), (5, True)])
def test_ci_script_fails_on_failed_or_empty_test_runs(tmp_path, pytest_exit, ci_fails):
    # .ci/run with a stand-in for scripts/test.sh that exits like pytest would (and a passing scripts/lint.sh).
    (tmp_path / ".ci").mkdir()
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "scripts" / "lint.sh").write_text("#!/usr/bin/env bash\nexit 0\n")
    (tmp_path / "scripts" / "test.sh").write_text(f"#!/usr/bin/env bash\nexit {pytest_exit}\n")
    result = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True, timeout=60)
    assert (result.returncode != 0) == ci_fails


def test_flops_convention_flag(capsys):
    from chinchilla import flops as accounting
    from chinchilla.cli import build_parser

    shape = [
        "flops",
        "--n-layers",
        "2",
        "--d-model",
        "64",
        "--ffw-size",
        "256",
        "--n-heads",
        "4",
        "--kv-size",
        "16",
        "--n-kv-heads",
        "2",
        "--vocab-size",
        "1000",
        "--seq-len",
        "128",
    ]
    assert main([*shape, "--convention", "maxtext", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["convention_flops_per_token"] == 1_022_976 and info["n_kv_heads"] == 2
    assert info["convention_flops_per_sequence"] == 1_022_976 * 128
    assert main(["flops", "--zoo", "tiny", "--convention", "deepseek", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all(r["convention"] == "deepseek" for r in rows)
    # The CLI offers exactly the library's conventions.
    action = next(
        a for a in build_parser()._subparsers._group_actions[0].choices["flops"]._actions if a.dest == "convention"
    )
    assert set(action.choices) == set(accounting.CONVENTIONS)
