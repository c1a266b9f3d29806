"""``chinchilla sweep``, ``chinchilla report`` and ``chinchilla reproduce``: plan and train a preset's sweep, fit the
three approaches to a sweep directory and write its report, or do all of it in one command (the main job)."""

from __future__ import annotations

import argparse
import sys

from chinchilla.cli import checks

BUDGET = checks.number(1.0, 1e30, "a training budget in FLOPs; the paper's largest is 5.76e23")


def register(subparsers: argparse._SubParsersAction) -> None:
    sweep = subparsers.add_parser(
        "sweep",
        help="plan (and train) a preset's IsoFLOP / training-curve sweep, resumably",
        description="Plan a preset's sweep and train the runs no other worker holds under OUT/runs/<run_id> (finished "
        "runs are skipped, so running it again resumes; any number of workers may share OUT: each "
        "claims the next unclaimed run). --plan-only prints the plan instead; "
        "--next-budget plans one more budget around the Approach 2 law of a finished sweep; "
        "--lr-check trains a learning-rate scan around the preset's per-size rule.",
    )
    sweep.add_argument(
        "--preset", default="tiny_cpu", help="a preset name (a module of chinchilla/presets/) or a .py path"
    )
    sweep.add_argument(
        "--out", type=checks.directory(), help="the sweep directory (local or gs://); required unless --plan-only"
    )
    sweep.add_argument("--plan-only", action="store_true", help="print the plan and its cost, train nothing")
    sweep.add_argument(
        "--next-budget",
        type=BUDGET,
        metavar="FLOPS",
        help="plan runs at this budget around the N_opt predicted by OUT's Approach 2 fit",
    )
    sweep.add_argument(
        "--lr-check",
        action="store_true",
        help="train a learning-rate scan (the preset's rule x 1/4 ... 4) at the preset's lr_check "
        "budget and sizes, into OUT/lr_check",
    )
    sweep.add_argument(
        "--head-to-head",
        type=BUDGET,
        metavar="FLOPS",
        help="after OUT's sweep: train the sizes our law and Kaplan's rule call optimal at this "
        "larger budget, into OUT/headtohead, and compare their losses",
    )
    sweep.add_argument(
        "--convention",
        choices=("non_embedding", "total"),
        help="--head-to-head / --next-budget: the parameter count the laws use (default: the preset's)",
    )
    _preset_arguments(sweep)
    _worker_arguments(sweep)
    _live_arguments(sweep)
    sweep.add_argument("--json", action="store_true", help="print the plan or outcome as JSON")
    sweep.set_defaults(func=run_sweep_command)

    report = subparsers.add_parser(
        "report",
        help="fit the three approaches to a sweep directory and write report.md, summary.json, figures",
        description="Read the finished runs of DIR, fit Approaches 1-3 under both parameter conventions, write "
        "DIR/report.md, DIR/summary.json and DIR/figure{2,3,4}.png, and print the Table-2-style table.",
    )
    report.add_argument("sweep_dir", help="the --out of a `chinchilla sweep` or `chinchilla reproduce`")
    report.add_argument(
        "--preset",
        help="take the analysis settings from this preset (default: those recorded in "
        "DIR/preset.json by sweep/reproduce, else built-in defaults)",
    )
    report.add_argument(
        "--loss",
        choices=("final_train_loss", "eval_loss"),
        help="the loss the approaches fit (default: the preset's; eval_loss for tiny_cpu)",
    )
    report.add_argument("--neighbours", type=int, help="IsoFLOP parabola: sizes each side of the minimum")
    report.add_argument("--convention", choices=("non_embedding", "total"), help="headline parameter convention")
    report.add_argument(
        "--resamples",
        type=checks.count(0, 1e6, "bootstrap resamples"),
        help="bootstrap resamples for every approach's interval",
    )
    report.add_argument("--no-figures", action="store_true", help="write report.md and summary.json only")
    report.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    report.add_argument(
        "--compare",
        nargs="+",
        metavar="DIR",
        help="also print the exponents of these other reported sweeps beside DIR's (e.g. the same "
        "preset on another data set: the paper's Table A2)",
    )
    report.set_defaults(func=run_report_command)

    reproduce = subparsers.add_parser(
        "reproduce",
        help="the main job: a preset's sweep, the three approaches, report and figures",
        description="Train the preset's sweep into OUT (resumably; any number of workers may share OUT, each "
        "claiming the next unclaimed run), then fit "
        "Approaches 1-3 and write OUT/report.md, OUT/summary.json and OUT/figure{2,3,4}.png.",
    )
    reproduce.add_argument(
        "--preset", default="tiny_cpu", help="a preset name (a module of chinchilla/presets/) or a .py path"
    )
    reproduce.add_argument("--out", required=True, type=checks.directory(), help="the sweep directory (local or gs://)")
    _preset_arguments(reproduce)
    _worker_arguments(reproduce)
    _live_arguments(reproduce)
    reproduce.add_argument("--progress", action="store_true", help="a progress bar per run")
    reproduce.add_argument("--json", action="store_true", help="print summary.json at the end")
    reproduce.add_argument(
        "--compare-schedules",
        action="store_true",
        help="a wsd preset (e.g. tiny_cpu_wsd) and its cosine twin (e.g. tiny_cpu): train both "
        "(OUT and --cosine-dir), then both Table 2s side by side and the per-point WSD - "
        "cosine loss differences beside the seed noise, into OUT/compare_schedules.md",
    )
    reproduce.add_argument(
        "--cosine-dir",
        type=checks.directory(),
        metavar="DIR",
        help="--compare-schedules: the cosine sweep's directory (an existing one is reused and "
        "resumed; default: OUT_cosine beside OUT)",
    )
    reproduce.add_argument(
        "--compare-datasets",
        nargs="+",
        metavar="DATASET",
        help="the paper's Table A2: the preset on each data set (e.g. embedded embedded/code) "
        "into OUT/<data set>, then their a and b side by side in OUT/table_a2.md",
    )
    reproduce.set_defaults(func=run_reproduce_command)


def _preset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--schedule",
        choices=("cosine", "wsd"),
        help="learning-rate schedule (default: the preset's; tiny_cpu: cosine, the paper's): wsd "
        "trains the same runs as warmup-stable-decay branches of shared constant-rate trunks "
        "(Hägele et al. 2024; docs/wsd.md)",
    )
    parser.add_argument(
        "--cooldown-fraction",
        type=checks.number(1e-9, 1.0, "the share of each run that decays"),
        help="wsd: each run decays over this share of its steps (default 0.2)",
    )
    parser.add_argument(
        "--cooldown-shape", choices=("1-sqrt", "linear", "cosine"), help="wsd: the cooldown's shape (default 1-sqrt)"
    )
    parser.add_argument(
        "--dataset",
        help="train on this data set instead of the preset's (e.g. embedded/kjv and "
        "embedded/shakespeare: the data dependence of the exponents)",
    )
    parser.add_argument(
        "--extend",
        action="store_true",
        help="OUT holds a sweep of another plan (e.g. the preset gained budgets): add this plan's "
        "new runs to it and keep the old ones (without it, a plan other than OUT's is "
        "refused, naming what changed; a run's settings can never change within OUT)",
    )


def _load(args: argparse.Namespace):
    from chinchilla import preset as preset_lib

    preset = preset_lib.load_preset(args.preset)
    preset = preset_lib.with_schedule(preset, args.schedule, args.cooldown_fraction, args.cooldown_shape)
    return preset_lib.with_dataset(preset, args.dataset) if args.dataset else preset


def _worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--worker",
        type=checks.count(0, 1e6, "a worker index"),
        help="this worker's index, for its log lines (default: SLURM_ARRAY_TASK_ID, "
        "JOB_COMPLETION_INDEX, else 0); workers sharing OUT claim runs one at a time, so any "
        "number of them, started whenever, trains every run once",
    )
    parser.add_argument(
        "--num-workers",
        type=checks.count(1, 1e6, "a worker count"),
        help="how many workers share OUT, for the log lines (default: SLURM_ARRAY_TASK_COUNT, else 1)",
    )
    parser.add_argument("--retry-failed", action="store_true", help="train failed runs again")
    parser.add_argument(
        "--jobs",
        default="auto",
        metavar="N",
        help="runs trained at once, each in a worker process with one XLA thread (the losses are the "
        "same for every N); 'auto' (default): the number of usable cores on CPU, one at a "
        "time on an accelerator",
    )


def _live_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tensorboard",
        nargs="?",
        const="1",
        metavar="DIR",
        help="also write each run's per-step metrics as TensorBoard event files: under "
        "OUT/runs/<run_id>/tensorboard, or DIR/<run_id> when DIR is given (sets "
        "CHINCHILLA_TENSORBOARD; needs the tensorboard extra: pip install "
        "'chinchilla-scaling[tensorboard]')",
    )


def _start_live_metrics(args: argparse.Namespace) -> None:
    """--tensorboard: check that tensorboardX imports, then ask every run (in worker processes too) for events."""
    if not args.tensorboard:
        return
    import os

    from chinchilla.metrics import ENV_TENSORBOARD, require_tensorboard

    require_tensorboard("--tensorboard")
    os.environ[ENV_TENSORBOARD] = args.tensorboard


def run_sweep_command(args: argparse.Namespace) -> int:
    from chinchilla import preset as preset_lib
    from chinchilla.cli.output import print_json
    from chinchilla.sweep import plan as plan_lib
    from chinchilla.sweep import run_sweep

    _check_sweep_flags(args)
    preset = _load(args)
    if args.convention:
        import dataclasses

        preset = dataclasses.replace(preset, convention=args.convention)
    if args.head_to_head:
        from chinchilla.studies.headtohead import plan_head_to_head, run_head_to_head

        if not args.out:
            raise ValueError("--head-to-head needs --out, a finished sweep of the preset")
        if not args.plan_only:
            _start_live_metrics(args)
            run_head_to_head(preset, args.out, args.head_to_head)
            return 0
        plan = plan_head_to_head(preset, args.out, args.head_to_head)[0]
    elif args.lr_check:
        plan = preset_lib.lr_check_plan(preset)
    elif args.next_budget:
        if not args.out:
            raise ValueError("--next-budget needs --out, a finished sweep whose Approach 2 law centres the plan")
        plan = preset_lib.next_budget_plan(preset, args.out, args.next_budget)
    else:
        plan = preset.plan()
    if args.plan_only:
        rows = plan_lib.summarize(plan, preset.convention)
        if args.json:
            print_json(
                {
                    "name": plan.name,
                    "total_flops": plan.total_flops,
                    "spent_flops": plan.spent_flops,
                    "runs": rows,
                    "skipped": list(plan.skipped),
                }
            )
        else:
            _print_plan(plan, rows, preset.convention)
        return 0
    if not args.out:
        raise ValueError("give --out DIR (or --plan-only)")
    if not preset.runnable:
        raise ValueError(f"preset {preset.name!r} is a plan only; use --plan-only")
    out = args.out.rstrip("/") + "/lr_check" if args.lr_check else args.out
    worker, num_workers = _worker_identity(args)
    _start_live_metrics(args)
    from chinchilla.sweep.identity import adopt_plan
    from chinchilla.sweep.pool import resolve_jobs
    from chinchilla.sweep.runner import failures_text

    resolve_jobs(args.jobs)  # a bad value (or no backend) is an error before anything is written
    plan = adopt_plan(plan, out, extend=args.extend or bool(args.next_budget))  # a changed plan: refused first
    if not args.lr_check:
        from chinchilla import runfiles

        runfiles.write_json_atomic(runfiles.as_path(out) / "preset.json", preset.describe())
    outcome = run_sweep(
        plan,
        out,
        train_fn=preset.train_fn(),
        worker=worker,
        num_workers=num_workers,
        retry_failed=args.retry_failed,
        jobs=args.jobs,
        log=_log(args),
    )
    if args.lr_check:
        _print_lr_check(out, preset)
    if args.json:
        print_json(outcome.to_dict())
    return _failed_exit(args, failures_text(plan, out))


def _failed_exit(args: argparse.Namespace, failures: str | None) -> int:
    """Exit status 1 with one line on stderr when runs failed (how many, the first reason, where all are)."""
    if not failures:
        return 0
    print(f"chinchilla {args.command}: error: {failures}", file=sys.stderr)
    return 1


def _worker_flags(args: argparse.Namespace) -> list[str]:
    """The worker flags given (those that only a training sweep reads)."""
    return [
        flag
        for flag, given in (
            ("--worker", args.worker is not None),
            ("--num-workers", args.num_workers is not None),
            ("--retry-failed", args.retry_failed),
            ("--extend", args.extend),
        )
        if given
    ]


def _worker_identity(args: argparse.Namespace) -> tuple[int, int]:
    """The flags, else a SLURM array's or a Kubernetes indexed job's variables (``chinchilla.sweep.workers``)."""
    from chinchilla.sweep.workers import worker_identity

    worker, num_workers, source = worker_identity(args.worker, args.num_workers)
    if source not in ("default", "--worker/--num-workers"):
        _log(args)(f"worker {worker + 1} of {num_workers} ({source})")
    return worker, num_workers


def _check_sweep_flags(args: argparse.Namespace) -> None:
    """One mode per ``sweep`` call; a flag the chosen mode does not read is an error naming both: no flag
    is silently ignored."""
    modes = [
        flag
        for flag, given in (
            ("--head-to-head", args.head_to_head),
            ("--lr-check", args.lr_check),
            ("--next-budget", args.next_budget),
        )
        if given
    ]
    if len(modes) > 1:
        raise ValueError(f"{modes[1]} would be ignored: {modes[0]} is a different sweep; give one of them")
    if args.plan_only and (_worker_flags(args) or args.tensorboard):
        raise ValueError(
            f"{(_worker_flags(args) or ['--tensorboard'])[0]} would be ignored: --plan-only trains nothing"
        )
    if args.head_to_head and not args.plan_only and (_worker_flags(args) or args.json):
        raise ValueError(
            f"{(_worker_flags(args) or ['--json'])[0]} would be ignored: --head-to-head trains its "
            "runs in one process and prints its comparison"
        )


def run_report_command(args: argparse.Namespace) -> int:
    import dataclasses

    from chinchilla import preset as preset_lib
    from chinchilla import reproduce, runfiles
    from chinchilla.analysis import render
    from chinchilla.analysis.report import AnalysisSettings
    from chinchilla.cli.output import print_json
    from chinchilla.sweep.results import check_sweep_dir, read_object

    check_sweep_dir(args.sweep_dir)  # a mistyped path is an error, and nothing is created or written
    for other in args.compare or ():
        check_sweep_dir(other)
        if not (runfiles.as_path(other) / "summary.json").exists():
            raise ValueError(f"{other} has no summary.json: run `chinchilla report {other}` first")
    settings = AnalysisSettings()
    recorded, problem = read_object(runfiles.as_path(args.sweep_dir) / "preset.json")
    if problem and not args.preset:
        raise ValueError(f"{args.sweep_dir}/{problem}; pass --preset NAME (or rerun the sweep command to rewrite it)")
    recorded = recorded or {}
    preset_name = args.preset or recorded.get("name")
    if args.preset:
        settings = preset_lib.load_preset(args.preset).analysis
    elif recorded.get("analysis"):
        settings = AnalysisSettings.from_dict(recorded["analysis"])
    changes = {}
    if args.loss:
        changes["loss"] = args.loss
    if args.neighbours is not None:
        changes["neighbours"] = args.neighbours
    if args.convention:
        changes["conventions"] = (args.convention,) + tuple(c for c in settings.conventions if c != args.convention)
    if args.resamples is not None:
        changes.update(n_resamples=args.resamples, approach3_resamples=args.resamples)
    settings = dataclasses.replace(settings, **changes)
    payload = reproduce.report(
        args.sweep_dir,
        settings,
        meta={"preset": preset_name or "sweep"},
        figures=not args.no_figures,
        log=None if args.json else print,
    )
    if args.json:
        print_json(payload)
    if args.compare:
        summaries = {args.sweep_dir: payload}
        for other in args.compare:
            loaded, problem = read_object(runfiles.as_path(other) / "summary.json")
            missing = [
                k for k in ("approach1", "approach2", "approach3") if not isinstance((loaded or {}).get(k), dict)
            ]
            if problem or missing:
                raise ValueError(
                    f"{other}/summary.json: {problem or 'no ' + ', '.join(missing)}; run "
                    f"`chinchilla report {other}` again"
                )
            summaries[other] = loaded
        print(render.compare_table(summaries))
    return 0


def _log(args: argparse.Namespace):
    """Progress lines go to stdout, or to stderr under --json so that stdout is one JSON document."""
    return (lambda line: print(line, file=sys.stderr)) if args.json else print


def run_reproduce_command(args: argparse.Namespace) -> int:
    import time

    from chinchilla import reproduce
    from chinchilla.cli.output import print_json
    from chinchilla.fit.progress import format_seconds
    from chinchilla.studies import schedules

    if args.compare_datasets and args.dataset:
        raise ValueError("--dataset would be ignored: --compare-datasets names the data sets to train on")
    ignored = [flag for flag in _worker_flags(args) if flag != "--retry-failed"]
    if args.compare_datasets and ignored:
        raise ValueError(
            f"{ignored[0]} would be ignored: --compare-datasets trains each of its data sets on this "
            "one host (--jobs runs at a time)"
        )
    if args.cosine_dir and not args.compare_schedules:
        raise ValueError("--cosine-dir would be ignored: it is the cosine sweep of --compare-schedules")
    if args.compare_schedules and args.compare_datasets:
        raise ValueError(
            "--compare-datasets would be ignored: --compare-schedules compares two schedules on the "
            "preset's data set; give one of them"
        )
    start = time.perf_counter()
    preset = _load(args)
    log = _log(args)
    _start_live_metrics(args)
    if args.compare_schedules:
        worker, num_workers = _worker_identity(args)
        outcome = schedules.compare_schedules(
            preset,
            args.out,
            cosine_dir=args.cosine_dir,
            worker=worker,
            num_workers=num_workers,
            retry_failed=args.retry_failed,
            progress=args.progress,
            jobs=args.jobs,
            extend=args.extend,
            log=log,
        )
        if outcome is not None and args.json:
            print_json(outcome)
        return _failed_exit(
            args, reproduce.failures(args.out) or (reproduce.failures(outcome["cosine_dir"]) if outcome else None)
        )
    if args.compare_datasets:
        from chinchilla.studies.datasets import compare_datasets

        outcome = compare_datasets(
            preset,
            args.compare_datasets,
            args.out,
            progress=args.progress,
            jobs=args.jobs,
            retry_failed=args.retry_failed,
            log=log,
        )
        if outcome is not None and args.json:
            print_json({d: s for d, s in outcome["summaries"].items()})
        return 0
    worker, num_workers = _worker_identity(args)
    payload = reproduce.reproduce(
        preset,
        args.out,
        worker=worker,
        num_workers=num_workers,
        retry_failed=args.retry_failed,
        progress=args.progress,
        jobs=args.jobs,
        extend=args.extend,
        log=log,
    )
    failures = reproduce.failures(args.out)
    if payload is None:
        return _failed_exit(args, failures)
    if args.json:
        print_json(payload)
    log(
        f"report: {args.out.rstrip('/')}/report.md (training {format_seconds(payload['train_time_s'])} over all runs; "
        f"this invocation {format_seconds(time.perf_counter() - start)})"
    )
    return _failed_exit(args, failures)


def _print_plan(plan, rows, convention: str) -> None:
    print(
        f"plan {plan.name}: {len(rows)} runs, {plan.total_flops:.3g} FLOPs (exact, Appendix F); "
        f"N = {convention} parameters"
    )
    trunks = [r for r in plan.runs if "trunk" in r.flags]
    if trunks:
        branches = sum(r.trunk is not None for r in plan.runs)
        print(
            f"wsd: {branches} runs branch off {len(trunks)} shared trunks; spent {plan.spent_flops:.3g} FLOPs "
            f"(each trunk once, then each branch's cooldown) for {plan.total_flops:.3g} nominal FLOPs (every run "
            f"whole, as the laws count it): {plan.spent_flops / plan.total_flops:.2f}x; a trunk's FLOPs are "
            "spent, not nominal"
        )
        for trunk in trunks:
            print(
                f"  {trunk.run_id}: {trunk.tokens:,} tokens, branch points at steps "
                f"{', '.join(str(s) for s in trunk.train.get('save_steps', ()))}"
            )
    width = max([len("run")] + [len(row["run_id"]) for row in rows]) + 2
    wsd = bool(trunks)
    print(
        f"{'run':<{width}}{'N':>15}{'tokens':>19}{'tokens/N':>10}{'FLOPs':>11}{'steps':>10}"
        + (f"{'spent':>11}  {'from':<12}" if wsd else "")
        + "  flags"
    )
    for row in rows:
        branch = f"{row['branch_point']:,}" if row.get("branch_point") is not None else ""
        print(
            f"{row['run_id']:<{width}}{row['n']:>15,}{row['tokens']:>19,}{row['tokens_per_param']:>10.1f}"
            f"{row['flops']:>11.3g}{row['steps']:>10,}"
            + (f"{row['spent_flops']:>11.3g}  {('step ' + branch) if branch else '':<12}" if wsd else "")
            + f"  {row['flags']}"
        )
    for skipped in plan.skipped:
        print(
            f"left out: {skipped.get('model')} at {skipped.get('budget', skipped.get('tokens')):.3g}: "
            f"{skipped['reason']}"
        )


def _print_lr_check(out: str, preset) -> None:
    from chinchilla.sweep import collect_results

    loss = preset.analysis.loss
    print(f"{'run':<52}{'lr':>10}{loss:>18}")
    for row in collect_results(out):
        value = row.get(loss)
        print(
            f"{row['run_id']:<52}{row['lr'] or float('nan'):>10.4g}{(f'{value:.4f}' if value else row['status']):>18}"
        )
