"""A mistyped name or flag is one line that points at the right one; a directory that is not a sweep's is said so."""

from __future__ import annotations

import pytest

from chinchilla import cli, zoo
from chinchilla.preset import load_preset


def _error(capsys, *argv: str) -> str:
    assert cli.main(list(argv)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_zoo_name_without_its_zero_padding_is_suggested():
    with pytest.raises(ValueError, match=r"did you mean 'tiny-00025k'\?"):
        zoo.get_model("tiny-25k")
    with pytest.raises(ValueError, match=r"did you mean 'gpu-0267M'\?"):
        zoo.get_model("gpu-267M")
    with pytest.raises(ValueError) as error:
        zoo.get_model("gpt2")
    assert "did you mean" not in str(error.value) and "chinchilla flops --zoo" in str(error.value)
    assert len(str(error.value)) < 200  # not the ~90 names on one line


def test_a_mistyped_preset_is_suggested():
    with pytest.raises(ValueError, match=r"unknown preset 'tiny_cpx'; did you mean 'tiny_cpu'\?"):
        load_preset("tiny_cpx")


def test_flags_are_taken_only_as_spelled(capsys):
    """argparse would take ``--bootstrap 4000`` as an abbreviation of ``--bootstrap-scheme`` and blame the value."""
    line = _error(capsys, "fit", "parametric", "--reference", "epoch", "--bootstrap", "4000")
    assert "unrecognized arguments: --bootstrap" in line and "--bootstrap-scheme" not in line


def test_fit_on_a_directory_that_is_not_a_sweep_says_so(capsys, tmp_path):
    line = _error(capsys, "fit", "parametric", str(tmp_path))
    assert "is not a sweep directory" in line and "plan.json" in line


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("chinchilla ")


def test_a_sweep_whose_data_files_are_missing_stops_before_any_run(capsys, tmp_path, monkeypatch):
    """The gpu preset without its FineWeb-Edu shards: one line naming the pattern, not 24 failed runs."""
    monkeypatch.setenv("CHINCHILLA_FINEWEB_DIR", str(tmp_path / "no-data"))
    line = _error(capsys, "reproduce", "--preset", "gpu", "--out", str(tmp_path / "sweep"))
    assert "matches no file" in line and "docs/data.md" in line
    assert not (tmp_path / "sweep" / "runs").exists()


def test_names_and_mappings_in_messages_read_as_english_not_python(capsys, tmp_path):
    from chinchilla.fit import get_law
    from chinchilla.fit.table import ScalingTable, reference_table

    assert _error(capsys, "allocate", "--flops", "1e22", "--ladder", "nope").endswith(
        "known ladders: chinchilla, gpu, tiny"
    )
    with pytest.raises(ValueError, match=r"known laws: chinchilla, data_constrained$"):
        get_law("kaplan")
    with pytest.raises(ValueError, match=r"known: epoch$"):
        reference_table("besiroglu")
    with pytest.raises(ValueError, match=r"columns differ in length: n 2, loss 1, d 2$"):
        ScalingTable.from_arrays([1e8, 2e8], [3.0], d=[1e9, 1e9])
    path = tmp_path / "runs.csv"
    path.write_text(
        "params,tokens,loss\n"
        + "".join(
            f"{n},{d},{1.69 + 406.4 / n**0.34 + 410.7 / d**0.28}\n" for n in (1e7, 1e8, 1e9) for d in (1e9, 1e10, 1e11)
        )
    )
    assert cli.main(["fit", "parametric", str(path), "--top-k", "8"]) == 0
    text = capsys.readouterr().out
    assert "{" not in text and "[" not in text, text
    assert "grid_unit_decades  n " in text


@pytest.mark.parametrize("verb", ["parametric", "approach1", "approach2"])
def test_fit_on_a_folder_with_runs_but_nothing_of_a_sweep_says_what_it_lacks(capsys, tmp_path, verb):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    line = _error(capsys, "fit", verb, str(tmp_path))
    assert "is not a sweep directory: it has no plan.json or results.csv" in line, line
    assert "(a) holds no run.json" in line and "a CSV of runs" in line and "group" not in line


def test_a_sweep_without_finished_runs_says_why():
    from chinchilla.cli.fit_inputs import ALL_GROUPS, _no_finished_runs

    rows = [
        {"group": "isoflop", "status": "running", "final_train_loss": None},
        {"group": "isoflop", "status": "failed", "final_train_loss": None},
        {"group": "curves", "status": "running", "final_train_loss": None},
    ]
    assert _no_finished_runs("s", [], [], ALL_GROUPS, "final_train_loss") == (
        "s: no runs recorded yet; fit it once some have finished"
    )
    assert _no_finished_runs("s", rows, rows[:2], "isoflop", "final_train_loss") == (
        "s: no finished runs of group isoflop yet (1 running, 1 failed); fit it once some have finished"
    )
    assert _no_finished_runs("s", rows, [], "wsd", "eval_loss") == (
        "s: no runs of group wsd; its groups are curves, isoflop (choose one with --group)"
    )
    done = [{"group": "isoflop", "status": "finished", "eval_loss": None}]
    assert "its 1 finished run of group isoflop has no eval_loss loss" in _no_finished_runs(
        "s", done, done, "isoflop", "eval_loss"
    )
