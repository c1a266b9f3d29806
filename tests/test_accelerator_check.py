"""``benchmarks/accelerator_check.py --dry`` runs every stage on CPU with tiny sizes, so the script cannot rot before
it meets an accelerator: each stage ends "ok" and the JSON and markdown reports hold what it measured."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_dry_run_measures_every_stage_and_writes_both_reports(tmp_path):
    spec = importlib.util.spec_from_file_location("accelerator_check", ROOT / "benchmarks" / "accelerator_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = module.main(["--dry", "--out", str(tmp_path), "--budget-s", "100000"])
    stages = data["stages"]
    assert {name: stage["status"] for name, stage in stages.items()} == {
        "environment": "ok", "fit": "ok", "throughput": "ok", "isoflop_sweep": "ok"}, stages
    assert stages["fit"]["objectives_agree"]
    (xla, cudnn), = [stages["throughput"]["runs"]]
    assert xla["attention_impl"] == "xla" and xla["tokens_per_s"] > 0 and 0 < xla["mfu"] < float("inf") and xla["finite"]
    assert "needs a CUDA GPU" in cudnn["error"]
    assert stages["isoflop_sweep"]["trained"] == 6 and stages["isoflop_sweep"]["failed"] == 0
    assert "IsoFLOP profiles" in stages["isoflop_sweep"]["report_table"]
    assert json.loads((tmp_path / "accelerator_check.json").read_text())["stages"] == json.loads(json.dumps(stages))
    text = (tmp_path / "accelerator_check.md").read_text()
    assert "## throughput: ok" in text and "tiny-00025k | xla" in text and "## isoflop_sweep: ok" in text
