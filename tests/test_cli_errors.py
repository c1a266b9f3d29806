"""Every verb x every kind of bad input: missing, unreadable and wrong-type paths, out-of-range and
non-finite numbers, conflicting flags, damaged run files. Each must end in exit status 2, exactly one line on stderr
that names the culprit, no traceback, and no change to any file that existed before.

The commands run in-process (``chinchilla.cli.main``) in a workspace holding a small synthetic sweep, a plain file,
and run directories with damaged files.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from chinchilla import cli, runfiles, zoo
from chinchilla.sweep import plan_isoflop, run_sweep
from chinchilla.sweep.synthetic import SyntheticTrainer

LONG = "x" * 300  # longer than any file system's name limit


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-errors")
    plan = plan_isoflop((1e11, 3e11), zoo.ladder("tiny")[:4], hparams=lambda m, tokens: {"batch_size": 8})
    run_sweep(plan, root / "sweep", train_fn=SyntheticTrainer(), log=None)
    (root / "afile.txt").write_text("not a directory\n")
    (root / "emptydir").mkdir()
    (root / "bad_config").mkdir()
    (root / "bad_config" / "config.json").write_text('{"model": {"n_lay')  # truncated
    for name, summary in (("no_status", {"steps": 3}), ("list_summary", [1, 2]), ("odd_status", {"status": "x"})):
        (root / name).mkdir()
        (root / name / "summary.json").write_text(json.dumps(summary))
    (root / "list_config").mkdir()
    (root / "list_config" / "config.json").write_text("[]")
    (root / "bad_plan").mkdir()
    (root / "bad_plan" / "plan.json").write_text("[1, 2, 3]")
    (root / "runs.csv").write_text("n,d,loss\n1e6,2e7,3.1\n")
    (root / "broken_preset.py").write_text("PRESET = (\n")
    (root / "bad_preset_json").mkdir()
    (root / "bad_preset_json" / "plan.json").write_text((root / "sweep" / "plan.json").read_text())
    (root / "bad_preset_json" / "preset.json").write_text("[]")
    return root


def _tree(root: Path) -> dict[str, str]:
    """Every path under ``root``: a file's SHA-256, "dir" for a directory."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


TRAIN = ["train", "--model", "tiny-00004k", "--quiet"]
LAW = ["--E", "1.69", "--A", "406.4", "--B", "410.7", "--alpha", "0.34"]

# (id, argv with {ws} for the workspace, a piece of the one line that names the culprit)
CASES = [
    # allocate: out-of-range and non-finite numbers
    ("allocate-params-huge", ["allocate", "--params", "1e300"], "1e300 lies outside"),
    ("allocate-params-tiny", ["allocate", "--params", "1e-300"], "1e-300 lies outside"),
    ("allocate-flops-inf", ["allocate", "--flops", "inf"], "'inf' is not a finite number"),
    ("allocate-flops-nan", ["allocate", "--flops", "nan"], "'nan' is not a finite number"),
    ("allocate-flops-text", ["allocate", "--flops", "lots"], "'lots' is not a number"),
    ("allocate-law-negative", ["allocate", "--flops", "1e20", *LAW, "--beta", "-0.28"], "argument --beta"),
    # flops: conflicting and ignored flags, unknown names
    ("flops-model-and-shape", ["flops", "--model", "tiny-00004k", "--n-layers", "3"], "--n-layers would be ignored"),
    ("flops-model-and-seq-len", ["flops", "--model", "tiny-00004k", "--seq-len", "64"], "--seq-len"),
    ("flops-zoo-and-model", ["flops", "--model", "tiny-00004k", "--zoo", "tiny"], "--model would be ignored"),
    ("flops-zoo-and-shape", ["flops", "--zoo", "tiny", "--d-model", "64"], "--d-model would be ignored"),
    ("flops-unknown-ladder", ["flops", "--zoo", "nosuch"], "'nosuch'"),
    ("flops-not-an-int", ["flops", "--n-layers", "two"], "'two'"),
    # fit: missing, wrong-type and too-long paths
    (
        "fit-missing-csv",
        ["fit", "parametric", "{ws}/missing.csv", "--n-col", "n", "--loss-col", "loss", "--tokens-col", "d"],
        "missing.csv",
    ),
    (
        "fit-csv-is-dir",
        ["fit", "parametric", "{ws}/emptydir", "--n-col", "n", "--loss-col", "loss", "--tokens-col", "d"],
        "emptydir",
    ),
    (
        "fit-csv-long-name",
        ["fit", "parametric", "{ws}/" + LONG, "--n-col", "n", "--loss-col", "loss", "--tokens-col", "d"],
        "name too long",
    ),
    (
        "fit-csv-missing-column",
        ["fit", "parametric", "{ws}/runs.csv", "--n-col", "N", "--loss-col", "loss", "--tokens-col", "d"],
        "'N'",
    ),
    ("fit-approach1-typo", ["fit", "approach1", "{ws}/sweep-typo"], "sweep-typo"),
    ("fit-approach1-not-sweep", ["fit", "approach1", "{ws}/emptydir"], "not a sweep directory"),
    ("fit-approach1-negative-window", ["fit", "approach1", "{ws}/sweep", "--window", "-3"], "-3"),
    ("fit-approach2-missing", ["fit", "approach2", "{ws}/missing.csv"], "missing.csv"),
    # fit: a flag the chosen mode does not read is an error naming both flags; --fraction's range
    (
        "fit-fraction-resample-scheme",
        ["fit", "parametric", "--reference", "epoch", "--resamples", "5", "--fraction", "0.5"],
        "--fraction would be ignored: --bootstrap-scheme resample",
    ),
    (
        "fit-fraction-no-bootstrap",
        ["fit", "parametric", "--reference", "epoch", "--fraction", "0.5"],
        "--fraction would be ignored: there is no bootstrap without --resamples",
    ),
    (
        "fit-fraction-above-1",
        [
            "fit",
            "parametric",
            "--reference",
            "epoch",
            "--resamples",
            "5",
            "--bootstrap-scheme",
            "subsample",
            "--fraction",
            "2",
        ],
        "argument --fraction: 2 lies outside",
    ),
    (
        "fit-fraction-zero",
        [
            "fit",
            "parametric",
            "--reference",
            "epoch",
            "--resamples",
            "5",
            "--bootstrap-scheme",
            "subsample",
            "--fraction",
            "0",
        ],
        "argument --fraction: 0 lies outside",
    ),
    (
        "fit-scheme-no-bootstrap",
        ["fit", "parametric", "--reference", "epoch", "--bootstrap-scheme", "subsample"],
        "--bootstrap-scheme would be ignored: there is no bootstrap without --resamples",
    ),
    (
        "fit-seed-no-bootstrap",
        ["fit", "parametric", "--reference", "epoch", "--seed", "3"],
        "--seed would be ignored: there is no bootstrap without --resamples",
    ),
    (
        "fit-percentiles-no-bootstrap",
        ["fit", "parametric", "--reference", "epoch", "--percentiles", "10", "90"],
        "--percentiles would be ignored: there is no bootstrap without --resamples",
    ),
    ("fit-bootstrap-negative", ["fit", "parametric", "--reference", "epoch", "--resamples", "-1"], "-1 lies outside"),
    (
        "fit-approach1-seed-no-resamples",
        ["fit", "approach1", "{ws}/sweep", "--resamples", "0", "--seed", "3"],
        "--seed would be ignored: --resamples 0",
    ),
    (
        "fit-approach2-seed-no-resamples",
        ["fit", "approach2", "{ws}/sweep", "--resamples", "0", "--seed", "3"],
        "--seed would be ignored: --resamples 0",
    ),
    (
        "fit-approach2-csv-group",
        ["fit", "approach2", "{ws}/runs.csv", "--group", "isoflop"],
        "--group would be ignored: ",
    ),
    (
        "fit-approach2-csv-convention",
        ["fit", "approach2", "{ws}/runs.csv", "--convention", "total"],
        "--convention would be ignored: ",
    ),
    ("fit-approach2-sweep-n-col", ["fit", "approach2", "{ws}/sweep", "--n-col", "N"], "--n-col would be ignored: "),
    (
        "fit-approach2-sweep-budget-col",
        ["fit", "approach2", "{ws}/sweep", "--budget-col", "b"],
        "--budget-col would be ignored: ",
    ),
    # train: numbers, paths, damaged run files
    ("train-tokens-inf", TRAIN + ["--tokens", "inf", "--out", "{ws}/r"], "'inf' is not a finite number"),
    ("train-tokens-negative", TRAIN + ["--tokens", "-5", "--out", "{ws}/r"], "-5 lies outside"),
    ("train-tokens-fraction", TRAIN + ["--tokens", "10.5", "--out", "{ws}/r"], "10.5 is not a whole number"),
    ("train-flops-huge", TRAIN + ["--flops", "1e40", "--out", "{ws}/r"], "1e40 lies outside"),
    ("train-too-many-steps", TRAIN + ["--flops", "1e25", "--out", "{ws}/r"], "--allow-long-run"),
    ("train-lr-zero", TRAIN + ["--tokens", "1e4", "--lr", "0", "--out", "{ws}/r"], "argument --lr"),
    ("train-out-url", TRAIN + ["--tokens", "1e4", "--out", "foo://bar/run"], "unknown URL scheme 'foo://'"),
    ("train-out-file", TRAIN + ["--tokens", "1e4", "--out", "{ws}/afile.txt"], "afile.txt"),
    ("train-out-under-file", TRAIN + ["--tokens", "1e4", "--out", "{ws}/afile.txt/run"], "afile.txt"),
    ("train-out-long", TRAIN + ["--tokens", "1e4", "--out", "{ws}/" + LONG], "longer than 255"),
    (
        "train-data-dir-file",
        TRAIN + ["--tokens", "1e4", "--data-dir", "{ws}/afile.txt", "--out", "{ws}/r"],
        "afile.txt",
    ),
    ("train-batch-size-zero", TRAIN + ["--tokens", "1e4", "--batch-size", "0", "--out", "{ws}/r"], "batch_size=0"),
    ("train-bad-mesh", TRAIN + ["--tokens", "1e4", "--mesh", "a,b", "--out", "{ws}/r"], "--mesh='a,b'"),
    ("train-unknown-model", TRAIN[:2] + ["nosuch", "--tokens", "1e4", "--out", "{ws}/r"], "'nosuch'"),
    ("train-truncated-config", TRAIN + ["--tokens", "1e4", "--out", "{ws}/bad_config"], "config.json is damaged"),
    ("train-list-config", TRAIN + ["--tokens", "1e4", "--out", "{ws}/list_config"], "config.json holds a JSON list"),
    ("train-summary-no-status", TRAIN + ["--tokens", "1e4", "--out", "{ws}/no_status"], "summary.json: status=None"),
    ("train-summary-odd-status", TRAIN + ["--tokens", "1e4", "--out", "{ws}/odd_status"], "status='x'"),
    ("train-list-summary", TRAIN + ["--tokens", "1e4", "--out", "{ws}/list_summary"], "summary.json holds a JSON"),
    # sweep and reproduce
    ("sweep-unknown-preset", ["sweep", "--preset", "nosuch", "--plan-only"], "'nosuch'"),
    ("sweep-out-url", ["sweep", "--out", "foo://bar"], "unknown URL scheme"),
    ("sweep-out-file", ["sweep", "--out", "{ws}/afile.txt"], "afile.txt"),
    ("sweep-budget-inf", ["sweep", "--next-budget", "inf", "--out", "{ws}/sweep"], "'inf' is not a finite"),
    ("sweep-negative-workers", ["sweep", "--num-workers", "0", "--out", "{ws}/s2"], "0 lies outside"),
    (
        "sweep-broken-preset-file",
        ["sweep", "--preset", "{ws}/broken_preset.py", "--plan-only"],
        "broken_preset.py' line 1 fails to load: SyntaxError",
    ),
    (
        "sweep-plan-only-worker",
        ["sweep", "--plan-only", "--worker", "1", "--num-workers", "2"],
        "--worker would be ignored: --plan-only",
    ),
    ("sweep-plan-only-retry", ["sweep", "--plan-only", "--retry-failed"], "--retry-failed would be ignored: --plan"),
    (
        "sweep-two-modes",
        ["sweep", "--lr-check", "--next-budget", "1e12", "--out", "{ws}/sweep"],
        "--next-budget would be ignored: --lr-check",
    ),
    (
        "sweep-head-to-head-and-lr-check",
        ["sweep", "--head-to-head", "1e13", "--lr-check", "--out", "{ws}/sweep"],
        "--lr-check would be ignored: --head-to-head",
    ),
    (
        "sweep-head-to-head-worker",
        ["sweep", "--head-to-head", "1e13", "--out", "{ws}/sweep", "--worker", "1", "--num-workers", "2"],
        "--worker would be ignored: --head-to-head",
    ),
    (
        "reproduce-compare-datasets-worker",
        ["reproduce", "--out", "{ws}/s4", "--compare-datasets", "embedded", "embedded/code", "--num-workers", "2"],
        "--num-workers would be ignored: --compare-datasets",
    ),
    (
        "reproduce-compare-datasets-dataset",
        [
            "reproduce",
            "--out",
            "{ws}/s4",
            "--compare-datasets",
            "embedded",
            "embedded/code",
            "--dataset",
            "embedded/kjv",
        ],
        "--dataset would be ignored: --compare-datasets",
    ),
    ("reproduce-jobs-zero", ["reproduce", "--preset", "synthetic", "--out", "{ws}/s5", "--jobs", "0"], "jobs=0"),
    (
        "reproduce-compare-datasets-jobs-zero",
        [
            "reproduce",
            "--preset",
            "synthetic",
            "--out",
            "{ws}/s5",
            "--compare-datasets",
            "embedded",
            "embedded/code",
            "--jobs",
            "0",
        ],
        "jobs=0",
    ),
    ("reproduce-out-under-file", ["reproduce", "--out", "{ws}/afile.txt/x"], "afile.txt"),
    ("reproduce-preset-missing-file", ["reproduce", "--preset", "{ws}/nosuch.py", "--out", "{ws}/s3"], "nosuch.py"),
    # report: mistyped and wrong-type paths, damaged plan
    ("report-typo", ["report", "{ws}/sweep-typo"], "sweep-typo"),
    ("report-not-a-sweep", ["report", "{ws}/emptydir"], "not a sweep directory"),
    ("report-a-file", ["report", "{ws}/afile.txt"], "afile.txt"),
    ("report-compare-typo", ["report", "{ws}/sweep", "--no-figures", "--compare", "{ws}/sweep-typo"], "sweep-typo"),
    ("report-compare-unreported", ["report", "{ws}/sweep", "--no-figures", "--compare", "{ws}/sweep"], "summary.json"),
    ("report-damaged-plan", ["report", "{ws}/bad_plan"], "plan.json"),
    ("report-damaged-preset-json", ["report", "{ws}/bad_preset_json"], "preset.json holds a JSON list"),
    ("report-resamples-negative", ["report", "{ws}/sweep", "--resamples", "-1"], "-1 lies outside"),
]


@pytest.mark.parametrize("argv, culprit", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(workspace, capsys, monkeypatch, argv, culprit):
    monkeypatch.setenv("CHINCHILLA_DATA_DIR", str(workspace / "data-cache"))
    monkeypatch.delenv("CHINCHILLA_DEBUG", raising=False)
    argv = [arg.replace("{ws}", str(workspace)) for arg in argv]
    before = _tree(workspace)
    status = cli.main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1, err
    verb = f"chinchilla {' '.join(argv[:2]) if argv[0] == 'fit' else argv[0]}"  # argparse names `fit <approach>`
    assert lines[0].startswith((f"chinchilla {argv[0]}: error: ", f"{verb}: error: ", "chinchilla: error:")), err
    assert culprit in lines[0], err
    assert "Traceback" not in err
    after = _tree(workspace)
    assert {k: v for k, v in after.items() if k in before} == before  # no file that existed before changed
    created = [k for k in after if k not in before and not k.endswith("run.lock")]
    assert not created, f"created {created}"  # nothing created by a command that failed on its input


def test_verbose_and_debug_show_the_traceback(workspace, capsys, monkeypatch):
    argv = ["report", str(workspace / "sweep-typo")]
    assert cli.main(argv + ["--verbose"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("chinchilla report: error:")
    monkeypatch.setenv("CHINCHILLA_DEBUG", "1")
    assert cli.main(argv) == 2
    assert "Traceback" in capsys.readouterr().err


def test_a_full_disk_is_one_line_naming_the_file_and_what_to_do(workspace, capsys, monkeypatch):
    def full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(runfiles, "write_text_atomic", full)
    assert cli.main(["report", str(workspace / "sweep"), "--no-figures", "--resamples", "0"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "free some space" in lines[0]
    assert "summary.json" in lines[0]  # the file being written


def test_an_internal_bug_is_one_line_asking_for_verbose_exit_1(capsys, monkeypatch):
    from chinchilla.cli import flops as flops_cli

    def broken(args):
        raise KeyError("oops")

    monkeypatch.setattr(flops_cli, "run", broken)
    assert cli.main(["flops", "--zoo", "tiny"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "internal error: KeyError" in lines[0] and "--verbose" in lines[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_directory_is_one_line(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert cli.main(TRAIN + ["--tokens", "1e4", "--out", str(locked / "run")]) == 2
    finally:
        locked.chmod(0o700)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Permission denied" in lines[0] and "locked" in lines[0]


@pytest.mark.parametrize(
    "verb",
    [
        ["train", "--model", "tiny-00004k", "--tokens", "1e4", "--out", "x"],
        ["sweep", "--preset", "synthetic"],
        ["report", "x"],
        ["reproduce", "--preset", "synthetic", "--out", "x"],
    ],
)
def test_an_unknown_flag_names_the_verb(verb, capsys):
    """An unknown flag (`chinchilla reproduce ... --plan-only`, a sweep flag) names the verb and its --help, not
    `chinchilla`."""
    assert cli.main([*verb, "--no-such-flag"]) == 2
    assert capsys.readouterr().err == (
        f"chinchilla {verb[0]}: error: unrecognized arguments: --no-such-flag (see `chinchilla {verb[0]} --help`)\n"
    )


def test_a_warning_is_one_line_naming_the_verb():
    """A DataRepeatWarning is one line, not two with a line of train.py's source as the second (in a fresh
    process: pytest records warnings itself), and the process's warning format is restored after the verb."""
    import subprocess
    import sys

    script = (
        "import sys, warnings\n"
        "from chinchilla import cli\n"
        "from chinchilla.cli import flops\n"
        "flops.run = lambda args: warnings.warn('data will repeat', UserWarning, stacklevel=1)\n"
        "before = warnings.formatwarning\n"
        "status = cli.main(['flops', '--model', 'tiny-00004k'])\n"
        "sys.exit(status if warnings.formatwarning is before else 3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, "chinchilla flops: warning: data will repeat (UserWarning)\n")


@pytest.mark.parametrize(
    "argv, kind",
    [
        (["allocate", "--flops", "inf", "--json"], "usage"),
        (["fit", "approach2", "x.csv", "--json", "--resamples", "abc"], "usage"),
        (["report", "/nonexistent/sweep", "--json"], "bad input"),
        (["memory", "--model", "x", "--batch-size", "8", "--chip", "h100", "--json"], "bad input"),
        (["fit", "approach2", "/nonexistent.csv", "--json"], "bad input"),
        (["train", "--model", "no-such-model", "--tokens", "1e4", "--out", "x", "--json"], "bad input"),
    ],
)
def test_with_json_every_error_is_one_json_object_on_stdout(argv, kind, capsys):
    """Usage errors and every verb's errors, not only fit's and allocate's: stdout is never left empty."""
    status = cli.main(argv)
    captured = capsys.readouterr()
    error = json.loads(captured.out)  # exactly one JSON document
    assert status == 2 and error["exit_status"] == 2 and error["error_kind"] == kind
    assert error["command"].startswith("chinchilla ") and captured.err.count("\n") == 1
