"""The Colab notebooks run top to bottom on the CPU: every notebook in smoke mode (CHINCHILLA_SMOKE=1: nothing
downloaded, runs drawn from a known surface), and notebook 01 in CPU mode (CHINCHILLA_CPU=1: its own cells train
three real runs of the tiny_cpu ladder on the embedded corpus and build the report).

Notebooks 02 and 03 are committed with the outputs of one full CPU run (so a reader sees their plots on GitHub): the
smoke-mode run re-executes them from their committed source and checks that every cell which does not depend on the
mode prints what is committed (numbers within 1%), so the outputs cannot silently go stale. To refresh them, execute
each in place with CHINCHILLA_SMOKE unset and JAX_PLATFORMS=cpu (about 20 s and 4 s), e.g.
`jupyter nbconvert --to notebook --execute --inplace colab/02_fit_a_scaling_law.ipynb`, then drop the cells'
``execution`` timing metadata."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "colab").glob("*.ipynb"))
WITH_OUTPUTS = NOTEBOOKS[1:]  # 02 and 03 ship with the outputs of a CPU run
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?")
VOLATILE = re.compile(r"^fit in [\d.]+ s$", re.MULTILINE)  # a wall time


def execute(notebook, cwd: Path) -> list[dict]:
    """Execute every cell in place (kernel: this interpreter's python3); return the code cells' outputs, no error
    among them."""
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    return outputs


def run_notebook(path: Path, cwd: Path) -> list[dict]:
    return execute(nbformat.read(path, as_version=4), cwd)


def printed(outputs: list[dict]) -> str:
    return "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")


def code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def assert_same_printout(committed: str, fresh: str, where: str) -> None:
    """The same text, numbers equal within 1% (a last printed digit may differ between machines)."""
    committed, fresh = VOLATILE.sub("", committed), VOLATILE.sub("", fresh)
    assert NUMBER.split(committed) == NUMBER.split(fresh), where
    for old, new in zip(NUMBER.findall(committed), NUMBER.findall(fresh)):
        assert float(new) == pytest.approx(float(old), rel=1e-2, abs=1e-12), (where, old, new)


def test_there_are_three_notebooks():
    assert [p.name for p in NOTEBOOKS] == [
        "01_reproduce_on_tpu.ipynb",
        "02_fit_a_scaling_law.ipynb",
        "03_plan_compute_optimal_models.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_cell_is_a_plain_pip_install_of_the_repo(path):
    """The install cell pip-installs the project from its git URL (no clone, no editable install, no sys.path edit)
    and only when it is not importable already (the test suite's kernel has it installed)."""
    setup = nbformat.read(path, as_version=4).cells[1].source
    assert 'packages = [f"chinchilla-scaling @ git+{REPO_URL}"]' in setup
    assert 'importlib.util.find_spec("chinchilla") is None' in setup
    assert "git clone" not in setup and '"-e"' not in setup and "sys.path" not in setup


@pytest.mark.parametrize("path", WITH_OUTPUTS, ids=lambda p: p.stem)
def test_notebooks_02_and_03_are_committed_with_the_outputs_of_a_full_cpu_run(path):
    """Every code cell ran once, top to bottom, in full mode (not smoke mode), without error, and left its plot as
    a PNG; no per-cell timing metadata."""
    cells = code_cells(nbformat.read(path, as_version=4))
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1))
    outputs = [output for cell in cells for output in cell.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert printed(cells[0].outputs) == "local\n"  # the setup cell: not smoke mode, not Colab
    assert all(cell.outputs for cell in cells)
    assert not any("execution" in cell.metadata for cell in cells)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_mode(path, tmp_path, monkeypatch):
    """Each notebook from its committed source (outputs and all); for 02 and 03, each cell that does not read SMOKE
    prints what is committed."""
    monkeypatch.setenv("CHINCHILLA_SMOKE", "1")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    committed = nbformat.read(path, as_version=4)
    notebook = nbformat.read(path, as_version=4)
    outputs = execute(notebook, tmp_path)
    # Every notebook ends in pictures: the report's figures, the fit's quality and frontier, the planning curves.
    assert any("image/png" in o.get("data", {}) for o in outputs)
    if path in WITH_OUTPUTS:
        compared = 0
        for index, (old, new) in enumerate(zip(code_cells(committed), code_cells(notebook))):
            if "SMOKE" not in old.source:
                assert_same_printout(printed(old.outputs), printed(new.outputs), f"{path.stem} code cell {index}")
                compared += 1
        assert compared >= 3


@pytest.mark.slow
def test_notebook_01_trains_for_real_in_cpu_mode(tmp_path, monkeypatch):
    """CPU mode: the notebook's own cells plan, train (real steps on the embedded corpus), resume and report."""
    monkeypatch.setenv("CHINCHILLA_CPU", "1")
    monkeypatch.delenv("CHINCHILLA_SMOKE", raising=False)
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("CHINCHILLA_DATA_DIR", str(tmp_path / "cache"))
    outputs = run_notebook(NOTEBOOKS[0], tmp_path)
    text = printed(outputs)
    assert "CPU mode" in text and "3 runs, 3e+11 FLOPs in total" in text
    out = Path(text.split("results in ", 1)[1].split("\n", 1)[0].strip())
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    for row in rows:
        run = out / "runs" / row["run_id"]
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        steps = [line for line in lines if "loss" in line and "step" in line]
        assert len(steps) >= 200, row["run_id"]  # tiny_cpu's min_steps: these are real training runs
        first, last = steps[0]["loss"], steps[-1]["loss"]
        assert math.isfinite(last) and last < first - 1.0, (row["run_id"], first, last)  # bytes: ln 256 = 5.5 -> < 4.5
    assert (out / "report.md").is_file() and any("image/png" in o.get("data", {}) for o in outputs)


@pytest.mark.slow
def test_notebook_02_fits_a_sweeps_results_csv_with_the_clis_column_discovery(tmp_path, monkeypatch):
    """Notebook 02 reads what `chinchilla fit parametric` reads: here a sweep's results.csv as the sweep wrote it
    (columns n_params, tokens, flops, eval_loss found by name; a failed run's empty loss skipped), given as the
    user would, by editing the CSV_PATH line."""
    from chinchilla import zoo
    from chinchilla.fit import read_csv
    from chinchilla.sweep import plan_isoflop, run_sweep
    from chinchilla.sweep.synthetic import SyntheticTrainer

    plan = plan_isoflop((1e11, 3e11, 1e12), zoo.ladder("tiny")[:8], hparams=lambda m, t: {"batch_size": 8})
    sweep = tmp_path / "sweep"
    run_sweep(plan, sweep, train_fn=SyntheticTrainer(noise=0.003, fail_runs=(plan.runs[0].run_id,)), log=None)
    expected = read_csv(sweep / "results.csv")  # the CLI's reader, no column named
    assert len(expected) == len(plan.runs) - 1
    notebook = nbformat.read(NOTEBOOKS[1], as_version=4)
    cell = next(c for c in notebook.cells if "CSV_PATH = None" in c.source)
    cell.source = cell.source.replace("CSV_PATH = None", f"CSV_PATH = {str(sweep / 'results.csv')!r}", 1)
    edited = tmp_path / NOTEBOOKS[1].name
    nbformat.write(notebook, edited)
    monkeypatch.setenv("CHINCHILLA_SMOKE", "1")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    text = printed(run_notebook(edited, tmp_path))
    assert f"{len(expected)} runs from {expected.source}" in text
    assert "N='n_params'" in text and "loss='eval_loss'" in text
