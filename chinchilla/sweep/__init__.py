"""Sweeps: planners (IsoFLOP grids, training-curve grids, the paper's grid, the next budget), a resumable runner over
one directory per run, and the results table and curves read back from those directories. Light to import (no jax,
flax or orbax until a run is actually trained)."""

from chinchilla.sweep.plan import (
    N_CONVENTIONS,
    PAPER_BUDGETS,
    Plan,
    PlannedRun,
    n_params,
    plan_isoflop,
    plan_next_budget,
    plan_paper,
    plan_training_curves,
    power_law_center,
    summarize,
    whole_step_tokens,
)
from chinchilla.sweep.results import (
    RESULT_COLUMNS,
    collect_results,
    load_curves,
    read_results_table,
    run_status,
    write_results_table,
)
from chinchilla.sweep.runner import SweepOutcome, assign_runs, plan_status, run_sweep, train_planned_run

__all__ = [
    "N_CONVENTIONS",
    "PAPER_BUDGETS",
    "Plan",
    "PlannedRun",
    "RESULT_COLUMNS",
    "SweepOutcome",
    "assign_runs",
    "collect_results",
    "load_curves",
    "n_params",
    "plan_isoflop",
    "plan_next_budget",
    "plan_paper",
    "plan_status",
    "plan_training_curves",
    "power_law_center",
    "read_results_table",
    "run_status",
    "run_sweep",
    "summarize",
    "train_planned_run",
    "whole_step_tokens",
    "write_results_table",
]
