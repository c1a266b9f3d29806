"""Warmup-stable-decay schedules and runs that branch off a shared trunk (Hägele et al. 2024): each cooldown shape's
closed form at its key points; a zero cooldown is a constant rate; a branch from step s of a trunk trains, step for
step, the uninterrupted run of its length; a branch refuses a trunk it cannot continue, in one line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from chinchilla import schedule, zoo
from chinchilla.step import hyperparameters
from chinchilla.train import TrainConfig, TrunkNotReady, train_run

PEAK, WARMUP, DECAY, TOTAL = 1e-2, 10, 80, 100


def _wsd(step, shape, final=0.0):
    return float(
        schedule.wsd_learning_rate(
            step,
            peak_lr=PEAK,
            warmup_steps=WARMUP,
            decay_start=DECAY,
            total_steps=TOTAL,
            final_fraction=final,
            shape=schedule.COOLDOWN_SHAPES.index(shape),
        )
    )


@pytest.mark.parametrize(
    "shape, quarter", [("1-sqrt", 1 - math.sqrt(0.25)), ("linear", 0.75), ("cosine", (1 + math.cos(math.pi / 4)) / 2)]
)
def test_each_cooldown_shape_at_its_key_points(shape, quarter):
    assert _wsd(0, shape) == pytest.approx(PEAK / WARMUP)  # warm-up: (s + 1) / W
    assert _wsd(WARMUP - 1, shape) == pytest.approx(PEAK)  # warm-up's end
    assert _wsd(WARMUP, shape) == pytest.approx(PEAK) and _wsd(DECAY - 1, shape) == pytest.approx(PEAK)  # stable
    assert _wsd(DECAY, shape) == pytest.approx(PEAK)  # the cooldown starts at f(0) = 1
    assert _wsd(DECAY + 5, shape) == pytest.approx(PEAK * quarter, rel=1e-6)  # p = 5 / 20
    assert _wsd(TOTAL, shape) == pytest.approx(0.0, abs=1e-9)  # and ends at f(1) = 0
    assert _wsd(TOTAL, shape, final=0.1) == pytest.approx(0.1 * PEAK)  # ... or at the final fraction
    assert _wsd(DECAY + 10, shape, final=0.1) == pytest.approx(
        PEAK * (0.1 + 0.9 * float(schedule.cooldown_factor(0.5, schedule.COOLDOWN_SHAPES.index(shape)))), rel=1e-6
    )


def test_a_zero_cooldown_is_a_constant_rate_after_warmup_and_the_step_selects_the_schedule():
    config = TrainConfig(
        model=zoo.get_model("tiny-00004k"),
        tokens=100 * 8 * 128,
        schedule="wsd",
        cooldown_fraction=0.0,
        warmup_tokens=10 * 8 * 128,
        lr=PEAK,
    )
    assert (config.steps, config.warmup_steps, config.decay_start, config.final_lr_fraction) == (100, 10, 100, 0.0)
    hp = hyperparameters(config)
    rates = [float(schedule.rate(s, hp)) for s in range(0, 100)]
    assert rates[:10] == pytest.approx([PEAK * (s + 1) / 10 for s in range(10)])
    assert rates[10:] == pytest.approx([PEAK] * 90)
    cosine = TrainConfig(model=config.model, tokens=config.tokens, lr=PEAK)  # the paper's default
    assert cosine.final_lr_fraction == 0.1
    assert float(schedule.rate(99, hyperparameters(cosine))) == pytest.approx(
        float(
            schedule.learning_rate(
                99, peak_lr=PEAK, warmup_steps=cosine.warmup_steps, cycle_steps=100, final_fraction=0.1
            )
        )
    )
    wsd = TrainConfig(model=config.model, tokens=config.tokens, lr=PEAK, schedule="wsd", warmup_tokens=10 * 8 * 128)
    assert wsd.decay_start == 80 and float(schedule.rate(90, hyperparameters(wsd))) == pytest.approx(
        PEAK * (1 - math.sqrt(0.5)), rel=1e-6
    )


BASE = dict(
    model=zoo.get_model("tiny-00004k"),
    batch_size=8,
    schedule="wsd",
    warmup_tokens=4 * 8 * 128,
    steps_per_dispatch=8,
    log_every=1,
    eval_batches=2,
    checkpoint_every=1000,
    data_tokens=40 * 8 * 128,
)


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_branch_from_a_trunk_trains_the_uninterrupted_runs_steps(tmp_path):
    """The trunk (constant rate after warm-up) keeps its state at the branch points 16 and 24; a branch of 20 steps
    (cooldown 20%: from step 16) and one of 30 (from step 24) continue it, data order and optimizer state included,
    and equal runs of 20 and 30 steps trained from scratch, step for step."""
    trunk = train_run(
        TrainConfig(**BASE, tokens=24 * 8 * 128, cooldown_fraction=0.0, save_steps=(16, 24)),
        tmp_path / "trunk",
        progress=False,
    )
    assert trunk["status"] == "finished"
    assert sorted(p.name for p in (tmp_path / "trunk" / "branch_points").iterdir()) == ["16", "24"]
    for steps, point in ((20, 16), (30, 24)):
        whole = train_run(TrainConfig(**BASE, tokens=steps * 8 * 128), tmp_path / f"whole{steps}", progress=False)
        branch = train_run(
            TrainConfig(**BASE, tokens=steps * 8 * 128, init_from=f"{tmp_path / 'trunk'}:{point}"),
            tmp_path / f"branch{steps}",
            progress=False,
        )
        expected, got = _rows(tmp_path / f"whole{steps}"), _rows(tmp_path / f"branch{steps}")
        assert [r["step"] for r in got] == [r["step"] for r in expected] == list(range(1, steps + 1))
        np.testing.assert_allclose([r["loss"] for r in got], [r["loss"] for r in expected], rtol=0, atol=2e-5)
        np.testing.assert_allclose([r["lr"] for r in got], [r["lr"] for r in expected], rtol=1e-6)
        assert branch["eval_loss"] == pytest.approx(whole["eval_loss"], abs=2e-5)
        assert (branch["tokens"], branch["flops"]) == (whole["tokens"], whole["flops"])  # the prefix counts
        assert got[-1]["lr"] < got[point - 1]["lr"]  # and the branch did cool down


def test_a_branch_refuses_a_trunk_it_cannot_continue_in_one_line(tmp_path):
    train_run(
        TrainConfig(**BASE, tokens=16 * 8 * 128, cooldown_fraction=0.0, save_steps=(12,)),
        tmp_path / "trunk",
        progress=False,
    )
    cases = [
        ({**BASE, "lr": 1e-2}, "trunk:12", r"the trunk differs from this run in \['lr'\]"),
        ({**BASE}, "trunk:8", "no checkpoint at step 8 yet"),
        ({**BASE}, "missing:12", "holds no run yet"),
        ({**BASE, "tokens": 14 * 8 * 128}, "trunk:12", "step 12 is past the stable phase"),
    ]
    for options, source, message in cases:
        options = {"tokens": 20 * 8 * 128, **options}
        config = TrainConfig(**options, init_from=str(tmp_path / source))
        with pytest.raises(ValueError, match=message) as error:
            train_run(config, tmp_path / f"branch-{source.replace(':', '-')}-{len(message)}", progress=False)
        assert "\n" not in str(error.value)
    # a warm-up given as a fraction of each run's own length: 4 steps of the 16-step trunk, 5 of a 20-step branch
    by_fraction = {**BASE, "warmup_tokens": None, "warmup_fraction": 0.25}
    train_run(
        TrainConfig(**by_fraction, tokens=16 * 8 * 128, cooldown_fraction=0.0, save_steps=(12,)),
        tmp_path / "trunk_f",
        progress=False,
    )
    with pytest.raises(
        ValueError, match="the trunk warms up over 4 steps and this run over 5: give both the same warmup_tokens"
    ) as error:
        train_run(
            TrainConfig(**by_fraction, tokens=20 * 8 * 128, init_from=str(tmp_path / "trunk_f:12")),
            tmp_path / "branch_f",
            progress=False,
        )
    assert "\n" not in str(error.value)
    assert issubclass(TrunkNotReady, ValueError)
    with pytest.raises(TrunkNotReady):
        train_run(
            TrainConfig(**BASE, tokens=20 * 8 * 128, init_from=str(tmp_path / "trunk:8")),
            tmp_path / "b8",
            progress=False,
        )


@pytest.mark.parametrize(
    "options, message",
    [
        ({"schedule": "step"}, "schedule='step' is not one of"),
        ({"schedule": "wsd", "cooldown_shape": "sqrt"}, "cooldown_shape='sqrt' is not one of"),
        ({"schedule": "wsd", "cooldown_fraction": 1.5}, r"cooldown_fraction=1.5 must be in \[0, 1\]"),
        ({"schedule": "wsd", "cycle_tokens": 1000}, "cycle_tokens=1000 is a cosine setting"),
        ({"warmup_tokens": -1}, "warmup_tokens=-1 must be an integer >= 0"),
        ({"save_steps": (0,)}, "save_steps=0 must be an integer >= 1"),
    ],
)
def test_bad_schedule_settings_are_refused_naming_the_field(options, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(model=zoo.get_model("tiny-00004k"), tokens=10**5, **options)


def test_share_trunks_plans_one_trunk_per_family_and_its_spent_flops_by_hand():
    from chinchilla import flops
    from chinchilla.sweep.plan import Plan, PlannedRun, share_trunks

    small, large = zoo.get_model("tiny-00004k"), zoo.get_model("tiny-00025k")
    step_tokens = 8 * small.seq_len

    def run(model, steps, lr, seed=0):
        per_step = 8 * flops.training_flops_per_sequence(model)
        return PlannedRun(
            run_id=f"{model.name}-{steps}-s{seed}",
            group="isoflop",
            model=model,
            tokens=steps * step_tokens,
            flops=float(steps * per_step),
            budget=None,
            train={"batch_size": 8, "lr": lr, "warmup_fraction": 0.1, "seed": seed},
        )

    plain = Plan(
        name="p",
        runs=(
            run(small, 100, 1e-2),
            run(small, 400, 4e-2),
            run(small, 200, 2e-2),
            run(large, 300, 1e-2),
            run(small, 100, 1e-2, seed=1),
        ),
    )
    wsd = share_trunks(plain, cooldown_fraction=0.2)
    trunks = [r for r in wsd.runs if "trunk" in r.flags]
    assert [r.run_id for r in wsd.runs[: len(trunks)]] == [r.run_id for r in trunks]  # trunks first
    assert len(trunks) == 1  # tiny-00004k seed 0 (3 lengths); seed 1 and tiny-00025k are families of one run
    trunk = trunks[0]
    assert trunk.tokens == 320 * step_tokens and trunk.train["save_steps"] == [80, 160, 320]
    assert trunk.train["cooldown_fraction"] == 0.0 and trunk.budget is None
    branches = {r.run_id: r for r in wsd.runs if r.trunk == trunk.run_id}
    assert {r.train["init_from"] for r in branches.values()} == {f"{trunk.run_id}:{d}" for d in (80, 160, 320)}
    family_lr = round((1e-2 * 4e-2 * 2e-2) ** (1 / 3), 6)  # one rate: the geometric mean of the cosine rule's
    assert {r.train["lr"] for r in branches.values()} == {trunk.train["lr"]} == {family_lr}
    assert {r.train["warmup_tokens"] for r in branches.values()} == {10 * step_tokens}  # 10% of the shortest
    assert wsd.total_flops == plain.total_flops  # the laws see whole runs
    per_step = {m.name: 8 * flops.training_flops_per_sequence(m) for m in (small, large)}
    # by hand: the trunk's 320 steps + the cooldowns 20 + 40 + 80, then the two single runs whole (100 + 300)
    assert wsd.spent_flops == pytest.approx(
        (320 + 20 + 40 + 80 + 100) * per_step[small.name] + 300 * per_step[large.name]
    )
    singles = [r for r in wsd.runs if r.trunk is None and "trunk" not in r.flags]
    assert all(r.train["schedule"] == "wsd" and r.shared_flops == 0 for r in singles) and len(singles) == 2
    # every run becomes a valid TrainConfig, and a branch's trunk would accept it
    for r in wsd.runs:
        config = TrainConfig(model=r.model, tokens=r.tokens, **r.train)
        if r.trunk:
            assert config.decay_start == int(r.train["init_from"].rpartition(":")[2])
