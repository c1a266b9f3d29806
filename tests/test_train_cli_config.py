"""`chinchilla train`'s flags come from TrainConfig's fields: every field is reachable from the command line (a field
added without a flag fails here), each is documented where it is declared, and a config's flags (``train_argv``)
parse back to an equal config, for runs planned as the tiny_cpu preset plans them (IsoFLOP and Approach 1 runs, WSD
trunks and branches) and for a config where every field differs from its default. ``--from-config`` starts from a
run's config.json and ``--print-command`` prints the command line that makes it. Nothing is trained."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex

import pytest

from chinchilla import cli, zoo
from chinchilla.sweep import plan_isoflop, plan_training_curves
from chinchilla.sweep.plan import n_params, power_law_center, share_trunks
from chinchilla.train_config import TrainConfig

# The fields with flags of their own; every other field is --field-name.
OWN_FLAGS = {"model": ("--model", "--seq-len"), "tokens": ("--tokens", "--flops")}


def train_parser() -> argparse.ArgumentParser:
    parser = cli.build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return subparsers.choices["train"]


def parse(argv: list[str]) -> TrainConfig:
    from chinchilla.cli import train

    return train.config_from_args(cli.build_parser().parse_args(["train", *argv]))


def test_every_train_config_field_is_a_documented_flag(capsys):
    parser = train_parser()
    flags = {option: action.dest for action in parser._actions for option in action.option_strings}
    assert cli.main(["train", "--help"]) == 0
    help_text = "".join(capsys.readouterr().out.split())  # without the line breaks (and spaces) of its wrapping
    for field in dataclasses.fields(TrainConfig):
        assert field.metadata.get("help"), f"TrainConfig.{field.name} has no help where it is declared"
        for flag in OWN_FLAGS.get(field.name, ("--" + field.name.replace("_", "-"),)):
            assert flag in flags, f"TrainConfig.{field.name}: `chinchilla train` has no {flag}"
            assert flag in help_text
        if field.name not in OWN_FLAGS:
            assert flags["--" + field.name.replace("_", "-")] == field.name
            assert "".join(field.metadata["help"].split()) in help_text
    for name in ("--attention", "--micro-batch-size", "--remat", "--mesh", "--init-from", "--save-steps", "--out"):
        assert name in flags  # flags that scripts and the docs use keep their names


def _tiny_cpu_hparams(model, tokens):
    """tiny_cpu's per-run settings (chinchilla/presets/tiny_cpu.py), copied so this test does not depend on it."""
    steps = max(1, tokens // (8 * model.seq_len))
    return {
        "batch_size": 8,
        "lr": round(min(0.025, 0.025 * (n_params(model, "non_embedding") / 14e3) ** -0.6 * (steps / 1000) ** -0.25), 5),
        "warmup_fraction": 0.3,
        "adam_b2": 0.95,
        "final_lr_fraction": 0.1,
        "dataset": "embedded",
        "tokenizer": "byte",
        "log_every": 1,
        "eval_batches": 32,
        "checkpoint_every": 2000,
    }


def planned_configs() -> list[TrainConfig]:
    ladder = zoo.ladder("tiny")[:6]
    isoflop = plan_isoflop(
        (1e11, 2e11),
        ladder,
        hparams=_tiny_cpu_hparams,
        center=power_law_center(3e11, 1.3e4, 0.7),
        sizes_per_budget=3,
        min_steps=20,
        seeds=(0, 1),
    )
    curves = plan_training_curves(ladder[:3], tokens_per_param=20.0, hparams=_tiny_cpu_hparams, stagger=True)
    wsd = share_trunks(isoflop, cooldown_fraction=0.2)
    runs = [*isoflop.runs, *curves.runs, *wsd.runs]
    assert curves.runs and any(run.train.get("init_from") for run in runs)
    return [TrainConfig(model=run.model, tokens=run.tokens, **dict(run.train)) for run in runs]


def test_planned_runs_flags_parse_back_to_their_configs(tmp_path, monkeypatch):
    from chinchilla.cli.train import train_argv

    monkeypatch.chdir(tmp_path)  # a branch's relative init_from is read against the working directory
    for config in planned_configs():
        expected = config
        if config.init_from is not None:
            expected = dataclasses.replace(config, init_from=str(tmp_path / config.init_from))
        assert parse([*train_argv(config), "--out", "run"]) == expected


def every_field_changed(tmp_path) -> list[TrainConfig]:
    """Two configs (cosine and wsd: a cosine cycle and a cooldown exclude each other) in which every field that has a
    flag differs from its default."""
    common = dict(
        model=zoo.get_model("tiny-00004k").replace(seq_len=64),
        tokens=3 * 2**16,
        batch_size=16,
        lr=0.0125,
        warmup_fraction=0.3,
        weight_decay=0.05,
        grad_clip=0.5,
        adam_b1=0.85,
        adam_b2=0.99,
        adam_eps=1e-6,
        seed=3,
        dataset="files:/data/shards/*.jsonl?text_key=body",
        tokenizer="sentencepiece:32000",
        data_dir=str(tmp_path / "cache dir"),
        log_every=5,
        eval_every=50,
        eval_batches=32,
        eval_split="test",
        checkpoint_every=100,
        keep_checkpoints=3,
        steps_per_dispatch=4,
        mesh=(2, -1, 1),
        compute_dtype="bfloat16",
        attention_impl="blocked",
        peak_flops=6.5e13,
        micro_batch_size=4,
        remat="dots",
        scan_layers=False,
        warmup_tokens=2048,
        init_from=f"{tmp_path / 'trunk'}:8",
        save_steps=(8, 12),
        data_tokens=10**6,
    )
    return [
        TrainConfig(**common, cycle_tokens=4 * 2**16, final_lr_fraction=0.05),
        TrainConfig(**common, schedule="wsd", cooldown_fraction=0.3, cooldown_shape="linear", final_lr_fraction=0.01),
    ]


def test_a_config_with_every_field_changed_round_trips_through_its_flags_and_its_command_line(tmp_path, capsys):
    from chinchilla.cli.train import train_argv, train_command

    configs = every_field_changed(tmp_path)
    defaults = TrainConfig(model=configs[0].model, tokens=configs[0].tokens)
    changed = {
        f.name
        for f in dataclasses.fields(TrainConfig)
        for c in configs
        if getattr(c, f.name) != getattr(defaults, f.name)
    }
    assert changed >= {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "tokens"}  # a new field: add it
    for config in configs:
        assert parse([*train_argv(config), "--out", "run"]) == config
        command = train_command(config, str(tmp_path / "new run"))
        words = shlex.split(command)
        assert words[:2] == ["chinchilla", "train"] and words[-2:] == ["--out", str(tmp_path / "new run")]
        assert parse(words[2:]) == config
        assert cli.main([*words[1:], "--print-command"]) == 0  # the printed command prints itself
        assert capsys.readouterr().out.strip() == command
    assert train_argv(defaults) == ["--model", "tiny-00004k", "--seq-len", "64", "--tokens", str(defaults.tokens)]


def _write_config(run_dir, config: TrainConfig) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict()))


def test_from_config_reproduces_a_run_and_flags_change_it(tmp_path, capsys):
    (cosine, wsd) = every_field_changed(tmp_path)
    branch = dataclasses.replace(wsd, init_from="trunk:8")  # as a sweep writes it: a sibling of the run directory
    _write_config(tmp_path / "runs" / "branch", branch)
    _write_config(tmp_path / "cosine", cosine)
    cosine_dir = str(tmp_path / "cosine")
    resolved = dataclasses.replace(branch, init_from=f"{tmp_path / 'runs' / 'trunk'}:8")
    assert parse(["--from-config", str(tmp_path / "runs" / "branch"), "--out", "x"]) == resolved
    assert parse(["--from-config", str(tmp_path / "cosine" / "config.json"), "--out", "x"]) == cosine
    changed = parse(["--from-config", cosine_dir, "--out", "x", "--tokens", "2e6", "--lr", "0.02"])
    assert changed == dataclasses.replace(cosine, tokens=2_000_000, lr=0.02)
    other = parse(["--from-config", cosine_dir, "--out", "x", "--model", "tiny-00006k", "--flops", "1e12"])
    assert other.model == zoo.get_model("tiny-00006k") and other.batch_size == cosine.batch_size
    assert parse(["--from-config", cosine_dir, "--out", "x", "--eval-every", "none"]).eval_every is None
    # the final rate follows the schedule where it was the schedule's default
    plain = TrainConfig(model=zoo.get_model("tiny-00004k"), tokens=2**16)
    _write_config(tmp_path / "plain", plain)
    assert parse(["--from-config", str(tmp_path / "plain"), "--out", "x", "--schedule", "wsd"]).final_lr_fraction == 0.0
    assert cli.main(["train", "--from-config", cosine_dir, "--out", "x", "--print-command"]) == 0
    from chinchilla.cli.train import train_command

    assert capsys.readouterr().out.strip() == train_command(cosine, "x")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--out", "x"], "give --model NAME and --tokens D (or --flops C), or --from-config RUN_DIR"),
        (["--model", "tiny-00004k", "--out", "x"], "give --model NAME and --tokens D"),
        (["--from-config", "{tmp}/nowhere", "--out", "x"], "nowhere"),
        (["--from-config", "{tmp}/list", "--out", "x"], "is not a run's config.json (a JSON list"),
        (["--model", "tiny-00004k", "--tokens", "1e4", "--out", "x", "--mesh", "1,2"], "--mesh='1,2' must be 3"),
        (["--model", "tiny-00004k", "--tokens", "1e4", "--out", "x", "--scan-layers", "yes"], "--scan-layers"),
        (["--model", "tiny-00004k", "--tokens", "1e4", "--out", "x", "--adam-b2", "1"], "adam_b2=1.0 must be in"),
        (["--model", "tiny-00004k", "--tokens", "1e4", "--out", "x", "--lr", "20"], "argument --lr: 20 lies outside"),
        (["--model", "tiny-00004k", "--tokens", "1e4", "--out", "x", "--remat", "some"], "argument --remat"),
    ],
)
def test_bad_train_flags_are_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "config.json").write_text("[]")
    argv = [word.replace("{tmp}", str(tmp_path)) for word in argv]
    assert cli.main(["train", *argv, "--print-command"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_a_model_outside_the_zoo_has_no_command_line_but_trains_from_its_config(tmp_path, capsys):
    from chinchilla.cli.train import train_argv

    config = TrainConfig(model=zoo.get_model("tiny-00004k").replace(d_model=16, name="mine"), tokens=2**16)
    with pytest.raises(ValueError, match="not a zoo model.*--from-config"):
        train_argv(config)
    _write_config(tmp_path / "mine", config)
    assert parse(["--from-config", str(tmp_path / "mine"), "--out", "x"]) == config
    assert cli.main(["train", "--from-config", str(tmp_path / "mine"), "--out", "x", "--print-command"]) == 2
    assert "not a zoo model" in capsys.readouterr().err
