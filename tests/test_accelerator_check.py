"""``benchmarks/accelerator_check.py --dry`` runs every stage on CPU with tiny stand-ins, so the script cannot rot
before it meets an accelerator: each stage ends "ok", its rows hold finite measurements (never a time bound), the
agreement values are within round-off, and the JSON and markdown reports hold what it measured."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("accelerator_check", ROOT / "benchmarks" / "accelerator_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def check():
    return _module()


@pytest.fixture(scope="module")
def dry(check, tmp_path_factory):
    out = tmp_path_factory.mktemp("accel")
    return check.main(["--dry", "--out", str(out), "--budget-s", "100000"]), out


def _finite_positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_every_stage_runs_and_both_reports_hold_it(dry):
    data, out = dry
    stages = data["stages"]
    assert {name: stage["status"] for name, stage in stages.items()} == {
        "environment": "ok",
        "preset_mfu": "ok",
        "remat": "ok",
        "memory": "ok",
        "agreement": "ok",
        "checkpoint": "ok",
    }, {name: stage.get("error") for name, stage in stages.items()}
    assert json.loads((out / "accelerator_check.json").read_text())["stages"] == json.loads(json.dumps(stages))
    text = (out / "accelerator_check.md").read_text()
    for name in stages:
        assert f"## {name}: ok" in text
    assert "| gpu largest | tiny-00025k |" in text and "| remat full | tiny-00025k |" in text


@pytest.mark.slow
def test_mfu_rows_follow_each_presets_setting_for_its_smallest_and_largest_model(dry):
    from chinchilla.preset import load_preset

    runs = dry[0]["stages"]["preset_mfu"]["runs"]
    assert [row["label"] for row in runs] == ["gpu smallest", "gpu largest", "colab_tpu smallest", "colab_tpu largest"]
    for preset in ("gpu", "colab_tpu"):
        runs_by_cost = sorted(load_preset(preset).plan().runs, key=lambda run: run.flops)
        planned = {run.model.name: dict(run.train) for run in runs_by_cost}  # each model's costliest run
        for row in (r for r in runs if r["label"].startswith(preset + " ")):
            hparams = planned[row["preset_model"]]  # the preset's own hparams for that model, read today
            assert row["preset_setting"]["batch_size"] == hparams["batch_size"]
            for key in ("micro_batch_size", "remat", "attention_impl"):
                assert row["preset_setting"].get(key) == hparams.get(key)
            assert row["status"] == "ok" and row["finite"], row
            assert _finite_positive(row["tokens_per_s"]) and _finite_positive(row["mfu"])
            assert row["setting"]["batch_size"] == 8
    names = [row["preset_model"] for row in runs[:2]]
    assert names[0] != names[1]  # smallest and largest are different models


@pytest.mark.slow
def test_remat_policies_give_the_same_first_loss_and_offload_is_skipped_on_cpu(dry):
    runs = {row["label"]: row for row in dry[0]["stages"]["remat"]["runs"]}
    assert list(runs) == ["remat none", "remat dots", "remat full", "remat offload"]
    measured = [runs[f"remat {p}"] for p in ("none", "dots", "full")]
    for row in measured:
        assert row["status"] == "ok" and row["finite"] and _finite_positive(row["step_time_s"])
        assert row["micro_steps"] == 2
    first = [row["first_loss"] for row in measured]
    assert max(first) - min(first) < 1e-5  # the same step from the same parameters: round-off only
    assert runs["remat offload"]["status"] == "skipped" and "pinned host memory" in runs["remat offload"]["reason"]


@pytest.mark.slow
def test_memory_rows_put_an_estimate_beside_every_measured_step(dry):
    memory = dry[0]["stages"]["memory"]
    assert len(memory["rows"]) == 7  # 4 preset runs + 3 remat policies
    for row in memory["rows"]:
        assert _finite_positive(row["estimate_bytes"]) and _finite_positive(row["xla_compiled_bytes"])
        assert row["estimate_source"].startswith(("chinchilla.memory.", "XLA memory_analysis"))
        assert row["peak_bytes_in_use"] is None  # a CPU device reports no memory_stats
    assert "no memory_stats" in memory["note"]


@pytest.mark.slow
def test_agreement_values(dry):
    rows = {row["label"]: row for row in dry[0]["stages"]["agreement"]["comparisons"]}
    assert rows["cudnn vs xla"]["status"] == "skipped" and "CUDA GPU" in rows["cudnn vs xla"]["reason"]
    splash = rows["splash vs xla"]
    assert splash["status"] == "ok" and splash["candidate_ran_as"].startswith("splash")
    assert splash["loss_abs_diff"] <= 1e-5 and splash["grad_max_abs_diff"] <= 1e-5  # float32, interpret mode
    half = rows["bf16 vs float32"]
    assert half["status"] == "ok" and half["finite"] and half["candidate_ran_as"] == "xla, bfloat16"
    assert 0 < half["loss_abs_diff"] < 0.05 * half["loss_reference"]  # bf16 differs, but only by round-off
    assert half["grad_rel_diff"] < 0.2


@pytest.mark.slow
def test_checkpoint_round_trip_is_bit_equal(dry):
    ckpt = dry[0]["stages"]["checkpoint"]
    assert ckpt["restored_equal"] is True
    assert (
        _finite_positive(ckpt["state_gib"]) and _finite_positive(ckpt["save_s"]) and _finite_positive(ckpt["restore_s"])
    )


def test_a_child_process_returns_its_row_or_its_error(check, tmp_path):
    report = check.Report(tmp_path, dry=True, budget_s=600)
    ok = check.run_measurement(
        {"kind": "checkpoint", "model": "tiny-00004k", "train": {"batch_size": 8}}, report, isolate=True
    )
    assert ok["status"] == "ok" and ok["restored_equal"] is True, ok
    bad = check.run_measurement({"kind": "step", "model": "no-such-model"}, report, isolate=True)
    assert bad["status"] == "error" and "unknown model 'no-such-model'" in bad["error"]


def test_a_spent_budget_skips_the_stages_and_still_writes_both_reports(check, tmp_path):
    data = check.main(["--dry", "--out", str(tmp_path), "--budget-s", "0.000001"])
    assert {stage["status"] for stage in data["stages"].values()} == {"skipped"}
    assert json.loads((tmp_path / "accelerator_check.json").read_text())["stages"].keys() == data["stages"].keys()
    assert "## preset_mfu: skipped" in (tmp_path / "accelerator_check.md").read_text()


def test_a_planner_is_called_with_what_its_signature_names(check):
    """The planner is being built beside the check: whatever estimate function chinchilla.memory has is called with
    the config or with the keyword arguments it names; one that needs more than the check knows is passed over."""
    from chinchilla import zoo
    from chinchilla.train_config import TrainConfig

    model = zoo.get_model("tiny-00004k")
    config = TrainConfig(model=model, tokens=10**6, batch_size=8, micro_batch_size=4, remat="full")
    offered = {
        "model": model,
        "batch_size": 8,
        "micro_batch_size": 4,
        "remat": "full",
        "attention": "cudnn",
        "chip_bytes": 80 * 10**9,
        "platform": "gpu",
    }
    seen = {}

    def plan(
        model,
        batch_size,
        *,
        chip_bytes,
        platform,
        micro_batch_size=None,
        remat=None,
        attention="auto",
        usable_fraction=0.85,
    ):
        seen.update(
            model=model.name,
            batch_size=batch_size,
            micro_batch_size=micro_batch_size,
            remat=remat,
            attention=attention,
            chip_bytes=chip_bytes,
            platform=platform,
        )
        return type("Plan", (), {"bytes_per_device": 123})()

    assert check._as_bytes(check._call_planner(plan, config, offered)) == 123.0
    assert seen == {
        "model": "tiny-00004k",
        "batch_size": 8,
        "micro_batch_size": 4,
        "remat": "full",
        "attention": "cudnn",
        "chip_bytes": 80 * 10**9,
        "platform": "gpu",
    }
    assert check._as_bytes(check._call_planner(lambda config: {"peak_bytes": 7}, config, offered)) == 7.0

    def needs_a_chip_name(model, chip):
        return 1

    with pytest.raises(TypeError, match="chip"):
        check._call_planner(needs_a_chip_name, config, offered)


def test_the_planner_of_this_tree_answers_for_a_measured_step(check):
    row = check.planner_estimate(
        {
            "model": "tiny-00004k",
            "setting": {"batch_size": 8, "micro_batch_size": 4, "remat": "dots", "steps_per_dispatch": 2},
            "attention": "xla",
            "compute_dtype": "float32",
            "platform": "cpu",
        }
    )
    assert row["estimate_source"] is None or row["estimate_source"].startswith("chinchilla.memory.")
    assert row["estimate_bytes"] is None or row["estimate_bytes"] > 0
