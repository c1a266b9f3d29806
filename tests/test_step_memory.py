"""The memory-saving forms of the train step compute the same run: gradient accumulation over micro-batches, per-layer
rematerialisation, scanned or unrolled layers; a run can resume under another execution plan; a checkpoint written
before the layers were stacked is refused in one line."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from chinchilla import zoo
from chinchilla.step import Trainer
from chinchilla.train import TrainConfig, train_run

MODEL = zoo.get_model("tiny-00025k")
FIXTURES = pathlib.Path(__file__).parent / "data"


def _max_diff(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def _steps(**options):
    """Four optimizer steps of batch 32 on fixed random batches: per-step losses, final parameters, the Trainer."""
    config = TrainConfig(model=MODEL, tokens=10**6, batch_size=32, steps_per_dispatch=4, **options)
    trainer = Trainer(config)
    batches = np.random.default_rng(0).integers(0, MODEL.vocab_size, (4, 32, MODEL.seq_len + 1)).astype(np.int32)
    state, out = trainer.train(trainer.init_state(), batches)
    return np.asarray(out["loss"]), jax.device_get(state["params"]), trainer


@pytest.fixture(scope="module")
def reference():
    return _steps()


@pytest.mark.parametrize(
    "options",
    [
        {"micro_batch_size": 8},
        {"micro_batch_size": 16, "remat": "dots"},
        {"remat": "full"},
        {"remat": "dots"},
        {"scan_layers": False},
        {"micro_batch_size": 4, "remat": "full", "scan_layers": False},
    ],
    ids=["micro8", "micro16-dots", "full", "dots", "unrolled", "micro4-full-unrolled"],
)
def test_accumulation_remat_and_scan_give_the_whole_batch_step(reference, options):
    losses, params, trainer = _steps(**options)
    assert trainer.micro_batch_size == options.get("micro_batch_size", 32)
    np.testing.assert_allclose(losses, reference[0], rtol=0, atol=5e-6)  # float32 round-off on ~5.5 nats
    assert _max_diff(params, reference[1]) < 1e-5  # measured up to 2.0e-6 (jax 0.8.0); a real fault: > 1e-3
    # and the steps really trained (steps that did nothing would also be "equal"): parameters moved from the init
    initial = jax.device_get(trainer.init_state()["params"])
    assert _max_diff(params, initial) > 1e-4


def test_micro_batches_are_spread_over_every_device_and_sum_to_the_batch(reference):
    *_, trainer = _steps(micro_batch_size=8)
    batch = np.arange(32)[:, None] * np.ones((1, MODEL.seq_len + 1), np.int32)
    micro = np.asarray(jax.jit(trainer._micro_batches)(batch))
    assert micro.shape == (4, 8, MODEL.seq_len + 1)
    assert sorted(micro[:, :, 0].ravel().tolist()) == list(range(32))  # every row once
    assert micro[1, :, 0].tolist() == [1, 5, 9, 13, 17, 21, 25, 29]  # strided: each micro-batch spans the batch


@pytest.mark.parametrize(
    "options, message",
    [
        ({"micro_batch_size": 5}, "micro_batch_size=5 must divide batch_size=32"),
        ({"micro_batch_size": 0}, "micro_batch_size=0 must be an integer >= 1"),
        ({"remat": "some"}, "remat='some' is not one of"),
        ({"attention_impl": "flash"}, "attention_impl='flash' is not one of"),
        ({"scan_layers": "yes"}, "scan_layers='yes' must be true, false or null"),
    ],
)
def test_bad_execution_settings_are_refused_naming_the_field(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        TrainConfig(model=MODEL, tokens=10**6, batch_size=32, **options)


def test_offload_is_refused_on_cpu_with_what_to_use_instead():
    with pytest.raises(ValueError, match="remat='offload'.*pinned host memory.*cpu backend"):
        Trainer(TrainConfig(model=MODEL, tokens=10**6, batch_size=32, remat="offload"))


def test_a_run_with_accumulation_logs_the_whole_batch_runs_losses_and_eval_loss(tmp_path):
    options = dict(
        model=zoo.get_model("tiny-00004k"),
        tokens=24 * 16 * 128,
        batch_size=16,
        steps_per_dispatch=8,
        log_every=4,
        eval_batches=2,
        checkpoint_every=8,
    )
    whole = train_run(TrainConfig(**options), tmp_path / "whole", progress=False)
    micro = train_run(TrainConfig(**options, micro_batch_size=4, remat="full"), tmp_path / "micro", progress=False)

    def losses(run):
        rows = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return {row["step"]: row["loss"] for row in rows if "loss" in row}

    assert losses("whole").keys() == losses("micro").keys() and len(losses("whole")) == 6
    for step, loss in losses("whole").items():
        assert losses("micro")[step] == pytest.approx(loss, abs=2e-5)
    assert micro["eval_loss"] == pytest.approx(whole["eval_loss"], abs=2e-5)
    assert micro["tokens"] == whole["tokens"] and micro["flops"] == whole["flops"]  # counted once per token
    assert (micro["micro_batch_size"], micro["remat"], whole["micro_batch_size"]) == (4, "full", 16)
    assert micro["attention"] == whole["attention"] == "xla" and "cpu" in whole["attention_reason"]

    # a run resumes under another execution plan (another chip's memory plan): same config otherwise
    shutil.copytree(tmp_path / "micro", tmp_path / "resumed")
    (tmp_path / "resumed" / "summary.json").unlink()
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "24")
    resumed = train_run(TrainConfig(**options, micro_batch_size=8), tmp_path / "resumed", progress=False)
    assert resumed["status"] == "finished" and resumed["micro_batch_size"] == 8
    assert resumed["eval_loss"] == pytest.approx(whole["eval_loss"], abs=2e-5)


def test_a_checkpoint_written_before_the_layers_were_stacked_is_refused_in_one_line(tmp_path):
    """tests/data/per_layer_run: a tiny-00004k run (8 steps) written by the version that kept one parameter set per
    layer, its summary.json removed so that it would resume."""
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "per_layer_run", run)
    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    with pytest.raises(ValueError) as error:
        train_run(config, run, progress=False)
    message = str(error.value)
    assert "\n" not in message and "one parameter set per layer" in message and "checkpoints/8" in message
    assert "params.blocks.0" in message or "blocks.0" in message
    assert (run / "checkpoints" / "8").is_dir()  # nothing moved aside or deleted


def test_the_stacked_scanned_model_trains_the_per_layer_models_losses(tmp_path):
    """The fixture's metrics.jsonl was written by the version with one module per layer (a Python loop over layers,
    the whole-logits loss): the same config now gives the same initial parameters (drawn layer by layer, then
    stacked) and so the same losses up to round-off, which Adam amplifies (its first update is ~lr * sign(g), so a
    component whose gradient is round-off flips): measured 1.3e-5 at step 2, 4e-4 at step 8."""
    config = TrainConfig.from_dict(json.loads((FIXTURES / "per_layer_run" / "config.json").read_text()))
    train_run(config, tmp_path / "run", progress=False)

    def losses(run):
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return {row["step"]: row["loss"] for row in rows if "loss" in row}

    before, now = losses(FIXTURES / "per_layer_run"), losses(tmp_path / "run")
    assert before.keys() == now.keys() and len(before) >= 4
    for step in before:
        assert now[step] == pytest.approx(before[step], abs=1e-3)  # another seed: 3e-2 at step 2


SPLASH_ON_A_MESH = """
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
import json, jax, numpy as np
from chinchilla import sharding, zoo
from chinchilla.step import Trainer
from chinchilla.train import TrainConfig
model = zoo.get_model("tiny-00025k")
batches = np.random.default_rng(0).integers(0, 256, (2, 8, model.seq_len + 1)).astype(np.int32)
def run(impl, mesh):
    config = TrainConfig(model=model, tokens=10**5, batch_size=8, steps_per_dispatch=2, attention_impl=impl)
    trainer = Trainer(config, mesh=mesh)
    state, out = trainer.train(trainer.init_state(), batches)
    shapes = jax.ShapeDtypeStruct(batches.shape, batches.dtype, sharding=trainer.batch_sharding)
    hp = {name: jax.ShapeDtypeStruct((), np.float32) for name in trainer.hp}
    hlo = trainer._train.lower(trainer.abstract_state, shapes, jax.ShapeDtypeStruct((), np.int32), hp).as_text()
    return [float(x) for x in out["loss"]], jax.device_get(state["params"]), hlo
ref_loss, ref_params, _ = run("xla", sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1]))
loss, params, hlo = run("splash", sharding.make_mesh(4, 1, 2))
diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)))
# shard_map lowers to a manual computation (each device runs the kernel on its own rows and heads)
print(json.dumps({"ref": ref_loss, "splash": loss, "params": diff, "per_device": "manual_computation" in hlo}))
"""


@pytest.mark.slow
def test_splash_attention_on_a_mesh_of_8_devices_runs_per_device_and_trains_the_single_device_losses():
    """A Pallas kernel is not partitioned by GSPMD: on a (data 4, tensor 2) mesh it runs under shard_map over the
    batch rows and heads (interpret mode here; the kernel itself on TPU)."""
    done = subprocess.run(
        [sys.executable, "-c", SPLASH_ON_A_MESH],
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(result["splash"], result["ref"], atol=2e-6)
    assert result["params"] < 2e-6
    assert result["per_device"]  # the kernel runs inside a manual (per-device) computation


def test_auto_scans_the_layers_where_it_pays_and_unrolls_them_on_cpu_without_remat():
    """Unrolled layers ran the tiny models' CPU step 1.4-1.7x faster (BENCHMARKS.md); scanned layers are one
    compiled layer whose remat every backend honours."""

    def scanned(**options):
        return Trainer(TrainConfig(model=MODEL, tokens=10**6, batch_size=32, **options)).scan_layers

    assert scanned() is False and scanned(remat="full") is True and scanned(remat="dots") is True
    assert scanned(scan_layers=True) is True and scanned(remat="full", scan_layers=False) is False


def test_the_configs_choices_are_the_modules_own():
    """TrainConfig validates names without importing jax (train_config.py stays light); its lists must be the
    modules' own, or a value would pass the config and fail in the step (or the other way round)."""
    from chinchilla import attention, model, schedule, train_config

    assert train_config.REMAT_POLICIES == model.REMAT_POLICIES
    assert train_config.ATTENTION_IMPLS == (attention.AUTO, *attention.IMPLS)
    assert train_config.SCHEDULES == schedule.SCHEDULES
    assert train_config.COOLDOWN_SHAPES == schedule.COOLDOWN_SHAPES
