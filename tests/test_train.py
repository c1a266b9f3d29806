"""Training runs: schedule and optimizer arithmetic, config validation, a real short run (files, FLOPs, loss well
below the unigram entropy, rerun does nothing), NaN handling, SIGKILL-and-resume exactness, the CLI, and sharded
(8 fake CPU devices) against unsharded steps."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from chinchilla import cli, data, flops, metrics, runfiles, zoo
from chinchilla.schedule import learning_rate
from chinchilla.step import Trainer, adamw_step
from chinchilla.train import TrainConfig, train_run

TINY = zoo.get_model("tiny-00004k")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_schedule_warms_up_linearly_then_decays_10x_over_the_cycle_and_holds():
    def lr(step):
        return float(learning_rate(step, peak_lr=1.0, warmup_steps=10, cycle_steps=110, final_fraction=0.1))

    assert lr(0) == pytest.approx(0.1) and lr(4) == pytest.approx(0.5) and lr(9) == pytest.approx(1.0)
    assert lr(10) == pytest.approx(1.0)
    assert lr(60) == pytest.approx(0.55)  # half-way through the cosine: (1 + 0.1) / 2
    assert lr(110) == pytest.approx(0.1) and lr(500) == pytest.approx(0.1)
    values = [lr(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_adamw_step_is_optax_clip_then_adamw_with_decay_on_matrices_only():
    params = {"w": jnp.arange(6.0).reshape(2, 3) / 7, "scale": jnp.ones(3)}
    grads = [{"w": jnp.full((2, 3), 3.0) * s, "scale": jnp.array([1.0, -2.0, 0.5]) * s} for s in (1.0, -0.3, 0.01)]
    hp = {
        "peak_lr": 0.1,
        "warmup_steps": 1.0,
        "cycle_steps": 10.0,
        "final_fraction": 0.1,
        "weight_decay": 0.2,
        "grad_clip": 1.0,
        "wsd": 0.0,
        "decay_start": 0.0,
        "total_steps": 10.0,
        "cooldown_shape": 0.0,
    }  # cosine

    def schedule(step):
        return learning_rate(step, peak_lr=0.1, warmup_steps=1, cycle_steps=10, final_fraction=0.1)

    reference = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(
            schedule,
            b1=0.9,
            b2=0.95,
            eps=1e-8,
            weight_decay=0.2,
            mask=lambda tree: jax.tree.map(lambda x: x.ndim > 1, tree),
        ),
    )
    adam = optax.scale_by_adam(b1=0.9, b2=0.95, eps=1e-8)
    ours, ours_state = params, adam.init(params)
    theirs, theirs_state = params, reference.init(params)
    for step, g in enumerate(grads):
        ours, ours_state, info = adamw_step(ours, g, ours_state, jnp.int32(step), hp, adam)
        updates, theirs_state = reference.update(g, theirs_state, theirs)
        theirs = optax.apply_updates(theirs, updates)
        assert float(info["lr"]) == pytest.approx(float(schedule(step)))
    for name in params:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"tokens": 0}, "tokens=0"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"lr": -1.0}, "lr=-1.0"),
        ({"warmup_fraction": 1.0}, "warmup_fraction=1.0"),
        ({"final_lr_fraction": 2.0}, "final_lr_fraction=2.0"),
        ({"cycle_tokens": 0}, "cycle_tokens=0"),
        ({"compute_dtype": "float16"}, "compute_dtype='float16'"),
        ({"mesh": (1, 2)}, "mesh=(1, 2)"),
        ({"model": TINY.replace(architecture="chinchilla")}, "architecture='chinchilla'"),
    ],
)
def test_invalid_train_configs_name_the_field(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**{"model": TINY, "tokens": 1000, **changes})


def test_one_compiled_init_serves_every_seed_with_nnx_rngs_seed_parameters():
    """The seed reaches init as an argument (its key), not as a constant of the program: one compile for every seed,
    and the parameters are those of ``nnx.Rngs(seed)``."""
    from flax import nnx

    from chinchilla.model import Decoder

    trainers = [Trainer(TrainConfig(model=TINY, tokens=1000, seed=seed)) for seed in (0, 7)]
    key_data = np.zeros(2, np.uint32)
    assert trainers[0]._init.lower(key_data).as_text() == trainers[1]._init.lower(key_data).as_text()
    trainer = trainers[1]
    decoder = Decoder(
        TINY,
        rngs=nnx.Rngs(7),
        compute_dtype=trainer.compute_dtype,
        attention_impl=trainer.attention_impl,
        remat=trainer.config.remat,
        scan_layers=trainer.scan_layers,
        mesh=trainer.mesh,
    )
    expected = nnx.to_pure_dict(nnx.state(decoder, nnx.Param))
    got = trainer.init_state()["params"]
    assert jax.tree.structure(got) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = trainers[0].init_state()["params"]
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(other), jax.tree.leaves(got)))  # seeds differ


def test_a_mesh_that_does_not_fit_the_batch_or_the_devices_is_rejected():
    with pytest.raises(ValueError, match="needs 4 devices"):
        Trainer(TrainConfig(model=TINY, tokens=1000, mesh=(2, 2, 1)))


def test_budgets_in_flops_convert_exactly_and_round_to_whole_steps():
    config = TrainConfig.from_flops(TINY, 1e13, batch_size=4)
    assert config.tokens == round(flops.tokens_for_flops(TINY, 1e13))
    assert config.steps == round(config.tokens / (4 * TINY.seq_len))
    assert config.cycle_steps == config.steps
    assert TrainConfig(model=TINY, tokens=10_000, batch_size=4, cycle_tokens=40_000).cycle_steps == 78
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_unknown_data_sets_give_a_clear_error_and_leave_no_run_behind(tmp_path):
    with pytest.raises(ValueError, match="dataset='no_such_dataset'"):
        train_run(TrainConfig(model=TINY, tokens=10_000, dataset="no_such_dataset"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.json").exists()
    with pytest.raises(ValueError, match="model.vocab_size=100"):  # the byte tokenizer has 256 tokens
        train_run(TrainConfig(model=TINY.replace(vocab_size=100), tokens=10_000), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="split='dev'"):
        train_run(TrainConfig(model=TINY, tokens=10_000, eval_split="dev"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.json").exists()


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """tiny-00025k for 300 steps of 8 x 128 tokens (~300k tokens), eval every 100 steps."""
    out = tmp_path_factory.mktemp("short") / "run"
    config = TrainConfig(
        model=zoo.get_model("tiny-00025k"), tokens=300 * 8 * 128, log_every=25, eval_every=100, checkpoint_every=100
    )
    return config, out, train_run(config, out, progress=False)


def test_a_short_run_writes_config_metrics_checkpoints_and_summary(short_run):
    config, out, summary = short_run
    assert json.loads((out / "config.json").read_text()) == config.to_dict()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "loss" in row][:3] == [25, 50, 75]
    flops_per_step = 8 * flops.training_flops_per_sequence(config.model)
    for row in rows:
        assert {"step", "tokens", "flops", "loss", "lr", "step_time", "tokens_per_s", "mfu"} <= set(row)
        assert row["tokens"] == row["step"] * 8 * 128
        assert row["flops"] == row["step"] * flops_per_step  # cumulative exact Appendix F FLOPs
        # MFU = tokens/s x FLOPs per token / a peak measured at another moment: positive and finite, never bounded
        # above here (a busy machine during the peak measurement inflates it; no test asserts a speed)
        assert 0 < row["mfu"] < float("inf") and row["step_time"] > 0
    assert sum("eval_loss" in row for row in rows) == 3  # at the dispatch boundaries after 100, 200 and at 300
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())[-1] == 300
    assert summary["status"] == "finished" and summary["steps"] == 300
    assert summary["tokens"] == 300 * 8 * 128 and summary["flops"] == 300 * flops_per_step
    assert summary["n_params"] == flops.param_count(config.model).total
    assert summary["non_embedding_params"] == flops.param_count(config.model).non_embedding
    assert summary["model"] == "tiny-00025k" and summary["eval_loss"] == rows[-1]["eval_loss"]
    assert json.loads((out / "summary.json").read_text()) == summary


def test_a_short_run_learns_well_below_the_unigram_entropy(short_run):
    _, _, summary = short_run
    unigram = data.unigram_entropy("embedded", "byte", "validation")
    assert summary["eval_loss"] < unigram - 0.6
    assert summary["train_loss_tail"] < data.unigram_entropy("embedded", "byte", "train") - 0.6


def test_rerunning_a_finished_run_does_nothing_and_says_so(short_run, capsys):
    config, out, summary = short_run
    before = (out / "metrics.jsonl").stat().st_mtime_ns
    assert train_run(config, out, progress=False) == summary
    assert "nothing to do" in capsys.readouterr().err
    assert (out / "metrics.jsonl").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match=r"another config \(lr 0.003 there, 0.001 here\)"):
        train_run(dataclasses.replace(config, lr=1e-3), out, progress=False)


def test_a_non_finite_loss_stops_the_run_marks_it_failed_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real_train = Trainer.train
    calls = []

    def poisoned(self, state, batches):  # the third dispatch (steps 17-24) returns NaN from its 4th step on
        state, out = real_train(self, state, batches)
        calls.append(1)
        if len(calls) == 3:
            out = dict(out, loss=out["loss"].at[3:].set(jnp.nan))
        return state, out

    monkeypatch.setattr(Trainer, "train", poisoned)
    out = tmp_path / "run"
    config = TrainConfig(model=TINY, tokens=64 * 8 * 128, steps_per_dispatch=8, checkpoint_every=8, log_every=1)
    summary = train_run(config, out, progress=False)
    assert summary["status"] == "failed" and "non-finite loss nan at step 20" in summary["reason"]
    assert summary["steps"] == 16
    assert json.loads((out / "summary.json").read_text())["status"] == "failed"
    steps = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] == 16
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(1, 20))
    assert all(np.isfinite(row["loss"]) for row in rows)
    assert train_run(config, out, progress=False)["status"] == "failed"  # a rerun does not retry


RUN_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from chinchilla import checkpoint, zoo
    from chinchilla.step import Trainer
    from chinchilla.train import TrainConfig, train_run
    out, kill_at_save = sys.argv[1], int(sys.argv[2])
    signals = [int(s) for s in sys.argv[3:]]  # sent to this process during the 3rd dispatch (after it started)
    if signals:
        train, dispatches = Trainer.train, []
        def signalled_train(self, state, batches):
            result = train(self, state, batches)
            dispatches.append(1)
            if len(dispatches) == 3:
                for signum in signals:
                    os.kill(os.getpid(), signum)
            return result
        Trainer.train = signalled_train
    if kill_at_save:
        save, calls = checkpoint.Checkpointer.save, []
        def killing_save(self, step, state, meta):
            calls.append(step)
            if len(calls) == kill_at_save:  # die mid-run, before this save, after its metrics were written
                os.kill(os.getpid(), signal.SIGKILL)
            save(self, step, state, meta)
        checkpoint.Checkpointer.save = killing_save
    config = TrainConfig(model=zoo.get_model("tiny-00004k"), tokens=100 * 8 * 128, steps_per_dispatch=8,
                         checkpoint_every=16, log_every=1, eval_every=32)
    try:
        train_run(config, out, progress=True)
    except KeyboardInterrupt as stop:
        sys.exit(f"stopped by {type(stop).__name__}")
""")


def _run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, "-c", RUN_SCRIPT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_exactly_the_uninterrupted_losses(tmp_path):
    whole, interrupted = tmp_path / "whole", tmp_path / "interrupted"
    assert _run_script(str(whole), "0").returncode == 0
    killed = _run_script(str(interrupted), "3")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (interrupted / "summary.json").exists()
    logged = [json.loads(line)["step"] for line in (interrupted / "metrics.jsonl").read_text().splitlines()]
    checkpoints = [int(p.name) for p in (interrupted / "checkpoints").iterdir() if p.name.isdigit()]
    assert max(logged) == 48 and max(checkpoints) < 48  # it had logged steps that its checkpoints do not hold
    resumed = _run_script(str(interrupted), "0")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from step" in resumed.stderr

    def rows(run):
        return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]

    expected, got = rows(whole), rows(interrupted)
    assert [r["step"] for r in got] == [r["step"] for r in expected] == list(range(1, 101))
    for key in ("loss", "lr", "grad_norm", "flops", "tokens"):
        assert [r[key] for r in got] == [r[key] for r in expected], key
    assert [r.get("eval_loss") for r in got] == [r.get("eval_loss") for r in expected]
    whole_summary = json.loads((whole / "summary.json").read_text())
    resumed_summary = json.loads((interrupted / "summary.json").read_text())
    for key in ("train_loss_tail", "eval_loss", "steps", "tokens", "flops", "status"):
        assert resumed_summary[key] == whole_summary[key], key


def _rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_where_it_stops_and_the_rerun_resumes_there(tmp_path, signum):
    """Nothing trained is lost to Ctrl-C or a scheduler's SIGTERM: the dispatch in flight ends, its metrics and a
    checkpoint at that step (24: between the periodic ones at 16 and 32) are written, and the rerun continues from it
    to exactly the uninterrupted run's losses."""
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert _run_script(str(whole), "0").returncode == 0
    first = _run_script(str(stopped), "0", str(int(signum)))
    name = "Terminated" if signum == signal.SIGTERM else "KeyboardInterrupt"
    assert first.returncode == 1 and f"stopped by {name}" in first.stderr, first.stderr[-2000:]
    assert "stopped at step 24 of 100, checkpoint saved" in first.stderr
    # stderr is a pipe here, as in a job's log: progress as whole lines, no carriage-return frames
    assert "\r" not in first.stderr and any("24/100" in line for line in first.stderr.splitlines()), first.stderr
    checkpoints = sorted(int(p.name) for p in (stopped / "checkpoints").iterdir() if p.name.isdigit())
    assert checkpoints[-1] == 24 and [r["step"] for r in _rows(stopped)] == list(range(1, 25))
    resumed = _run_script(str(stopped), "0")
    assert resumed.returncode == 0 and "resuming from step 24 of 100" in resumed.stderr, resumed.stderr[-2000:]
    for key in ("step", "loss", "lr", "grad_norm", "eval_loss"):
        assert [r.get(key) for r in _rows(stopped)] == [r.get(key) for r in _rows(whole)], key


def test_a_second_ctrl_c_stops_at_once_without_a_checkpoint(tmp_path):
    """For a loop that is stuck: the second signal raises where it lands (here within the same dispatch)."""
    run = tmp_path / "run"
    done = _run_script(str(run), "0", str(int(signal.SIGINT)), str(int(signal.SIGINT)))
    assert done.returncode == 1 and "stopped by KeyboardInterrupt" in done.stderr, done.stderr[-2000:]
    assert "checkpoint saved" not in done.stderr
    assert max(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == 16


def test_the_train_command_trains_then_skips_a_finished_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative --out, as typed at a shell (orbax itself wants absolute paths)
    out = tmp_path / "cli"
    argv = [
        "train",
        "--model",
        "tiny-00004k",
        "--tokens",
        "2e4",
        "--out",
        "cli",
        "--batch-size",
        "4",
        "--seq-len",
        "64",
        "--lr",
        "1e-3",
        "--seed",
        "3",
        "--quiet",
    ]
    assert cli.main([*argv, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "finished" and summary["steps"] == round(2e4 / (4 * 64))
    assert summary["seq_len"] == 64 and summary["batch_size"] == 4
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 3 and config["lr"] == 1e-3 and config["model"]["seq_len"] == 64
    line = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert {"step", "tokens", "flops", "loss"} <= set(line)
    assert cli.main(argv) == 0  # finished: does nothing, and says so for a person on stdout
    captured = capsys.readouterr()
    assert "nothing to do" in captured.err
    assert captured.out.splitlines() == [
        f"finished: tiny-00004k ({summary['n_params']:,} parameters), {summary['tokens']:,} tokens, "
        f"{summary['flops']:.3g} FLOPs, {summary['steps']}/{summary['steps']} steps of 4 x 64 tokens in "
        + captured.out.split(" tokens in ", 1)[1].splitlines()[0],
        f"train loss (mean of the last 10 steps) {summary['train_loss_tail']:.4f}, "
        f"eval loss {summary['eval_loss']:.4f}",
        "summary: cli/summary.json (--json prints it)",
    ]
    assert cli.main(["train", "--model", "no-such-model", "--tokens", "10", "--out", str(out)]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "train",
                "--model",
                "tiny-00004k",
                "--flops",
                "3e9",
                "--out",
                str(tmp_path / "flops"),
                "--batch-size",
                "2",
                "--quiet",
                "--json",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["tokens_budget"] == round(flops.tokens_for_flops(TINY, 3e9))
    assert summary["flops"] == pytest.approx(3e9, rel=0.5 * 2 * 128 / summary["tokens"])  # within half a step


SHARDED_SCRIPT = textwrap.dedent("""
    import json, os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax, numpy as np
    from chinchilla import sharding, zoo
    from chinchilla.step import Trainer
    from chinchilla.train import TrainConfig
    config = TrainConfig(model=zoo.get_model("tiny-00025k"), tokens=10**5, batch_size=8, steps_per_dispatch=3)
    batches = np.random.default_rng(0).integers(0, 256, (3, 8, 129)).astype(np.int32)
    def run(mesh):
        trainer = Trainer(config, mesh=mesh)
        state = trainer.init_state()
        init = jax.device_get(state["params"])
        specs = {"qkv": str(tuple(state["params"]["blocks"]["qkv"].sharding.spec)),
                 "embedding": str(tuple(state["params"]["embedding"].sharding.spec)),
                 "mu_w_in": str(tuple(state["opt_state"].mu["blocks"]["w_in"].sharding.spec))}
        state, out = trainer.train(state, batches)
        return init, jax.device_get(state["params"]), jax.device_get(out), specs
    ref_init, ref_params, ref_out, _ = run(sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1]))
    result = {"devices": jax.device_count()}
    for shape in [(4, 1, 2), (2, 2, 2)]:
        init, params, out, specs = run(sharding.make_mesh(*shape))
        diff = lambda a, b: max(float(np.max(np.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
        result[str(shape)] = {"init": diff(init, ref_init), "params": diff(params, ref_params),
                              "loss": [float(x) for x in out["loss"]], "specs": specs}
    result["ref_loss"] = [float(x) for x in ref_out["loss"]]
    print(json.dumps(result))
""")


@pytest.mark.slow
def test_sharded_steps_on_8_devices_agree_with_the_unsharded_step():
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", SHARDED_SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["devices"] == 8
    data_tensor, fsdp = result["(4, 1, 2)"], result["(2, 2, 2)"]
    assert "tensor" in data_tensor["specs"]["qkv"] and "fsdp" not in data_tensor["specs"]["qkv"]
    assert "fsdp" in fsdp["specs"]["qkv"] and "tensor" in fsdp["specs"]["embedding"]
    assert fsdp["specs"]["mu_w_in"] == "(None, 'fsdp', 'tensor')"  # like params; layers axis whole (str(P) varies)
    for run in (data_tensor, fsdp):
        assert run["init"] == 0.0  # the same initial parameters on any mesh
        np.testing.assert_allclose(run["loss"], result["ref_loss"], rtol=1e-5)
        assert run["params"] < 1e-5


class _FakeDevice:
    def __init__(self, kind: str):
        self.device_kind = kind


@pytest.mark.parametrize(
    "kind, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989e12),
        ("NVIDIA H200", 989e12),
        ("NVIDIA A100-SXM4-40GB", 312e12),
        ("TPU v4", 275e12),
        ("TPU v5 lite", 197e12),
        ("TPU v5p", 459e12),
        ("TPU v6 lite", 918e12),
        ("TPU v3", 123e12 / 2),  # two jax devices (TensorCores) per v3 chip
        ("Some Future Chip", None),
    ],
)
def test_the_peak_table_knows_the_accelerators_of_the_facts_file(kind, peak):
    assert metrics.device_peak_flops(_FakeDevice(kind)) == peak


def test_json_files_are_replaced_atomically_and_torn_jsonl_lines_are_skipped(tmp_path):
    path = tmp_path / "summary.json"
    runfiles.write_json_atomic(path, {"a": 1})
    runfiles.write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2} and sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    lines = tmp_path / "metrics.jsonl"
    runfiles.append_jsonl(lines, [{"step": 1}, {"step": 2}])
    with open(lines, "a") as handle:
        handle.write('{"step": 3, "lo')  # a crash mid-write
    assert runfiles.read_jsonl(lines) == [{"step": 1}, {"step": 2}]


def test_a_budget_rounded_to_whole_steps_is_said(tmp_path, capsys):
    """--tokens 100 with 8 x 16-token steps trains one step (128 tokens): the summary says so instead of silence."""
    argv = ["train", "--model", "tiny-00004k", "--seq-len", "16", "--batch-size", "8", "--quiet"]
    assert cli.main([*argv, "--tokens", "100", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "1/1 steps of 8 x 16 tokens" in out and "(the budget, 100 tokens, rounded to whole steps)" in out, out
    assert cli.main([*argv, "--tokens", str(8 * 16 * 3), "--out", str(tmp_path / "b")]) == 0  # whole steps: no note
    assert "rounded to whole steps" not in capsys.readouterr().out


def test_a_directory_holding_another_config_names_each_field_with_both_values(tmp_path):
    config = TrainConfig(model=TINY, tokens=2 * 8 * 128, batch_size=8)
    train_run(config, tmp_path / "run", progress=False)
    other = dataclasses.replace(config, tokens=3 * 8 * 128, lr=5e-3)
    with pytest.raises(ValueError, match=r"another config \(lr .* there, 0\.005 here, tokens 2048 there, 3072 here\)"):
        train_run(other, tmp_path / "run", progress=False)
