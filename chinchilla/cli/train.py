"""``chinchilla train``: one training run of a zoo model on a token (or FLOP) budget, resumable in its directory.

Its flags come from ``TrainConfig``'s fields (``chinchilla.train_config``): one ``--field-name`` per field, typed by
the field's annotation, with the field's default and its documentation as help, grouped as the fields are
(``FIELD_GROUPS``). The model and the budget have flags of their own (``--model NAME`` and ``--seq-len``; ``--tokens
D`` or ``--flops C``). ``--from-config RUN_DIR`` starts from another run's ``config.json`` (flags override it) and
``--print-command`` prints the command line that makes a config (``train_command``) instead of training.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import logging
import math
import os
import shlex
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

from chinchilla.cli import checks
from chinchilla.train_config import FIELD_GROUPS, TrainConfig  # plain Python: no JAX, no NumPy

# Longer runs need --allow-long-run: 10x the ~1e6 steps of Chinchilla 70B itself (1.4T tokens at ~1.5M per step);
# a count beyond it is almost always a unit slip (FLOPs typed as tokens, a missing batch size).
MAX_STEPS = 10_000_000
LOG_FILE = "train.log"  # the libraries' log lines (orbax, absl) of a run: kept out of the terminal unless --verbose
# TrainConfig fields with flags of their own instead of --field-name: the model and the token budget.
OWN_FLAGS = {"model": ("--model", "--seq-len"), "tokens": ("--tokens", "--flops")}
# Flags whose values are checked where they enter, in narrower ranges than TrainConfig's (a value outside is almost
# surely a slip): one-line errors naming the flag. Every other flag is checked by TrainConfig itself.
FLAG_TYPES: dict[str, Callable[[str], Any]] = {
    "lr": checks.number(1e-12, 10.0, "a peak learning rate"),
    "cycle_tokens": checks.count(1, 1e15, "a cycle length in tokens"),
    "warmup_tokens": checks.count(0, 1e15, "a warm-up length in tokens"),
    "cooldown_fraction": checks.number(0.0, 1.0, "the share of the run that decays"),
    "micro_batch_size": checks.count(1, 1e9, "sequences per micro-step"),
    "data_dir": checks.directory(),
}
COOLDOWN_FIELDS = ("cooldown_fraction", "cooldown_shape")  # read by the wsd schedule only


def flag_fields() -> list[dataclasses.Field]:
    """The ``TrainConfig`` fields that have a ``--field-name`` flag (all but ``OWN_FLAGS``), in declaration order."""
    return [field for field in dataclasses.fields(TrainConfig) if field.name not in OWN_FLAGS]


def flag_name(field: dataclasses.Field) -> str:
    return "--" + field.name.replace("_", "-")


@functools.cache
def _annotations() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _field_type(field: dataclasses.Field) -> tuple[Any, bool]:
    """A field's annotation without its ``| None``, and whether None is allowed."""
    hint = _annotations()[field.name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint):
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return inner, True
    return hint, False


def _is_tuple(hint: Any) -> bool:
    return typing.get_origin(hint) is tuple


def _boolean(text: str) -> bool:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def _parser_of(field: dataclasses.Field) -> Callable[[str], Any]:
    """The argparse type function of a field's flag: from ``FLAG_TYPES``, else from its annotation (whole numbers,
    numbers, true/false, text; a tuple stays text until ``config_from_args``), taking the field's word for None
    (``none``, or its ``none`` metadata) when None is allowed."""
    hint, optional = _field_type(field)
    if field.name in FLAG_TYPES:
        parse = FLAG_TYPES[field.name]
    elif hint is int:
        parse = checks.count(-math.inf, math.inf, "a whole number")
    elif hint is float:
        parse = checks.number(-math.inf, math.inf, "a number")
    elif hint is bool:
        parse = _boolean
    elif hint is str or _is_tuple(hint):
        parse = str
    else:
        raise TypeError(f"TrainConfig.{field.name}: no flag for a {hint!r}")  # a new kind of field: teach it here
    if not optional:
        return parse
    none = field.metadata.get("none", "none")

    def parse_optional(text: str) -> Any:
        return None if text == none else parse(text)

    parse_optional.__name__ = getattr(parse, "__name__", "value")
    return parse_optional


def value_text(field: dataclasses.Field, value: Any) -> str:
    """A field's value as its flag takes it (the inverse of its type function and of ``_tuple_value``)."""
    if value is None:
        return field.metadata.get("none", "none")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value) or "none"
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def _tuple_value(field: dataclasses.Field, text: str) -> tuple[int, ...]:
    """A tuple field's flag (whole numbers separated by commas; ``none`` or nothing for an empty variable-length
    one) as a tuple, or a ValueError naming the flag."""
    hint, _ = _field_type(field)
    args = typing.get_args(hint)
    length = None if len(args) == 2 and args[1] is Ellipsis else len(args)
    if length is None and text.strip() in ("", "none"):
        return ()
    try:
        value = tuple(int(item) for item in text.split(","))
    except ValueError:
        value = None
    if value is None or (length is not None and len(value) != length):
        count = "" if length is None else f"{length} "
        raise ValueError(
            f"{flag_name(field)}={text!r} must be {count}whole numbers separated by commas "
            f"({field.metadata.get('metavar', '')}), e.g. {','.join(map(str, field.default)) or '800,1600'}"
        )
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        usage="chinchilla train (--model NAME (--tokens D | --flops C) | --from-config RUN_DIR) --out DIR "
        "[--FIELD VALUE ...]",
        help="train a zoo model for a token or FLOP budget (resumes an unfinished DIR, skips a finished one)",
        description="Train a zoo model on the embedded corpus (or another data set) for D tokens or C FLOPs. DIR "
        "receives config.json, metrics.jsonl, checkpoints/ and summary.json. Rerunning the same command "
        "resumes from the latest checkpoint; on a finished DIR it does nothing. There is one flag per TrainConfig "
        "field (chinchilla/train_config.py documents each); a flag that may be empty takes 'none'.",
    )
    command = parser.add_argument_group("the run")
    command.add_argument("--out", required=True, metavar="DIR", type=checks.directory(), help="run directory")
    command.add_argument(
        "--from-config",
        metavar="RUN_DIR[/config.json]",
        help="start from another run's config.json (its model, budget and every setting); the flags given change "
        "it: e.g. reproduce a run in a new --out, or train it longer with --tokens",
    )
    command.add_argument(
        "--print-command",
        action="store_true",
        help="print the `chinchilla train` command line that makes this run's config (e.g. with --from-config), "
        "and train nothing",
    )
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.add_argument(
        "--json", action="store_true", help="print summary.json's contents (errors: a JSON object) instead of a summary"
    )
    command.add_argument(
        "--allow-long-run",
        action="store_true",
        help=f"train even when the budget is more than {MAX_STEPS:,} steps (refused otherwise)",
    )
    command.add_argument(
        "--break-lock",
        action="store_true",
        help="take over a run directory whose lock names a process that is gone but could not be "
        "checked (another host, a shared file system); see README 'When things go wrong'",
    )
    groups = {key: parser.add_argument_group(title) for key, title in FIELD_GROUPS.items()}
    budget = groups["budget"]
    budget.add_argument(
        "--model",
        metavar="NAME",
        help="zoo model name, e.g. tiny-00025k (see `chinchilla flops --zoo tiny`); required without --from-config",
    )
    budget.add_argument(
        "--seq-len",
        metavar="N",
        type=checks.count(1, 1e9, "a context length"),
        help="context length (default: the model's)",
    )
    tokens = budget.add_mutually_exclusive_group()
    tokens.add_argument(
        "--tokens",
        metavar="D",
        type=checks.count(1, 1e15, "1e15 tokens is more text than exists"),
        help="training tokens D, e.g. 2e6 (this or --flops is required without --from-config)",
    )
    tokens.add_argument(
        "--flops",
        metavar="C",
        type=checks.number(1.0, 1e30, "a training budget; the paper's largest is 5.76e23"),
        help="training FLOPs C (Appendix F), converted to tokens exactly",
    )
    for field in flag_fields():
        meta = field.metadata
        if not meta.get("help") or meta.get("group") not in groups:
            raise TypeError(f"TrainConfig.{field.name} has no help or group: declare it with _field(help, group, ...)")
        hint, _ = _field_type(field)
        metavar = meta.get("metavar")
        if metavar is None and hint is bool:
            metavar = "{true,false" + (f",{meta.get('none', 'none')}" if _field_type(field)[1] else "") + "}"
        elif metavar is None and "choices" not in meta:
            metavar = {int: "N", float: "X"}.get(hint, "NAME")
        groups[meta["group"]].add_argument(
            flag_name(field),
            *meta.get("aliases", ()),
            dest=field.name,
            type=_parser_of(field),
            choices=meta.get("choices"),
            metavar=metavar,
            default=argparse.SUPPRESS,  # absent unless given: the base config's value stands
            help=f"{meta['help']} (default: {value_text(field, field.default)})".replace("%", "%%"),
        )
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` that ``chinchilla train``'s flags make: ``--from-config``'s (else the defaults) with every
    flag given set. A cooldown flag without the wsd schedule is refused (it would be ignored); ``--init-from``'s run
    directory is made absolute against the working directory (a relative one would be read beside the run
    directory)."""
    from chinchilla import zoo

    base, base_dir = _read_config(args.from_config) if getattr(args, "from_config", None) else (None, None)
    if base is None and (args.model is None or (args.tokens is None and args.flops is None)):
        raise ValueError("give --model NAME and --tokens D (or --flops C), or --from-config RUN_DIR")
    model = zoo.get_model(args.model) if args.model is not None else base.model
    if args.seq_len is not None:
        model = model.replace(seq_len=args.seq_len)
    options = _base_options(base, base_dir) if base is not None else {}
    for field in flag_fields():
        if not hasattr(args, field.name):
            continue
        value = getattr(args, field.name)
        if _is_tuple(_field_type(field)[0]):
            value = _tuple_value(field, value)
        if field.name == "init_from" and value is not None:
            value = _absolute_init_from(value)
        options[field.name] = value
    given_cooldown = [name for name in COOLDOWN_FIELDS if hasattr(args, name)]
    if given_cooldown and options.get("schedule", "cosine") != "wsd":
        raise ValueError(
            f"{flag_name(TrainConfig.__dataclass_fields__[given_cooldown[0]])} would be ignored: the cosine "
            "schedule has no cooldown; add --schedule wsd"
        )
    if args.flops is not None:
        return TrainConfig.from_flops(model, args.flops, **options)
    return TrainConfig(model=model, tokens=args.tokens if args.tokens is not None else base.tokens, **options)


def _read_config(path: str) -> tuple[TrainConfig, str]:
    """``--from-config``: the ``TrainConfig`` in a run directory's config.json (or in the file named), and the run
    directory."""
    import json

    from etils import epath

    file = epath.Path(path)
    if file.is_dir():
        file = file / "config.json"
    try:
        data = json.loads(file.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        config = TrainConfig.from_dict(data)
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"--from-config: {file} is not a run's config.json ({error})") from None
    return config, os.fspath(file.parent)


def _base_options(base: TrainConfig, base_dir: str) -> dict[str, Any]:
    """``--from-config``'s fields for ``TrainConfig`` (all but the model and budget): its final learning-rate
    fraction is left to the schedule where it is that schedule's default (so that ``--schedule`` changes it), a
    relative ``init_from`` (a sibling of its run directory) is made absolute."""
    options = {field.name: getattr(base, field.name) for field in flag_fields()}
    if _schedule_default(base):
        options["final_lr_fraction"] = None
    if base.init_from is not None and "://" not in base.init_from and not os.path.isabs(base.init_from):
        options["init_from"] = os.path.join(os.path.dirname(os.path.abspath(base_dir)), base.init_from)
    return options


def _schedule_default(config: TrainConfig) -> bool:
    """Whether ``config``'s final learning-rate fraction is its schedule's default (what None becomes)."""
    return config.final_lr_fraction == dataclasses.replace(config, final_lr_fraction=None).final_lr_fraction


def _absolute_init_from(text: str) -> str:
    directory, colon, step = text.rpartition(":")
    if not (colon and step.isdigit() and directory):
        directory, step = text, ""
    if not directory.strip():
        raise ValueError(f"--init-from={text!r} names no run directory (RUN_DIR or RUN_DIR:STEP)")
    if "://" not in directory:
        directory = os.path.abspath(directory)
    return f"{directory}:{step}" if step else directory


def train_argv(config: TrainConfig) -> list[str]:
    """The ``chinchilla train`` flags (all but ``--out``) that make ``config``: ``--model``, ``--seq-len`` where it is
    not the zoo model's, ``--tokens``, and one flag per field that is not its default. A relative ``init_from`` is
    passed as it is (the command line reads it against the working directory). ValueError for a model that is not a
    zoo model (``--from-config`` takes its config.json instead)."""
    from chinchilla import zoo

    try:
        named = zoo.get_model(config.model.name)
    except ValueError:
        named = None
    if named is None or named.replace(seq_len=config.model.seq_len) != config.model:
        raise ValueError(
            f"model {config.model.name!r} is not a zoo model (nor one with another seq_len): no flags make it; "
            "train from its config.json with --from-config"
        )
    argv = ["--model", config.model.name]
    if config.model.seq_len != named.seq_len:
        argv += ["--seq-len", str(config.model.seq_len)]
    argv += ["--tokens", str(config.tokens)]
    defaults = TrainConfig(model=config.model, tokens=config.tokens)
    for field in flag_fields():
        value = getattr(config, field.name)
        if field.name == "final_lr_fraction" and _schedule_default(config):
            continue
        if value != getattr(defaults, field.name):
            text = value_text(field, value)
            argv += [f"{flag_name(field)}={text}"] if text.startswith("-") else [flag_name(field), text]
    return argv


def train_command(config: TrainConfig, out: str) -> str:
    """The shell command line that trains ``config`` into ``out`` (``train_argv``)."""
    return shlex.join(["chinchilla", "train", *train_argv(config), "--out", out])


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.print_command:
        print(train_command(config, args.out))
        return 0
    from chinchilla.cli.output import print_json
    from chinchilla.train import train_run  # JAX

    if config.steps > MAX_STEPS and not args.allow_long_run:
        raise ValueError(
            f"the budget is {config.steps:.3g} steps of {config.tokens_per_step:,} tokens, more than "
            f"{MAX_STEPS:,}; check its unit, or pass --allow-long-run"
        )
    _check_orphan_summary(config, args.out)
    with _library_log_to(args.out, LOG_FILE, enabled=not getattr(args, "verbose", False)):
        try:
            summary = train_run(config, args.out, progress=not args.quiet, break_lock=args.break_lock)
        except OSError as error:
            if error.filename is not None or error.errno is None:
                raise
            raise OSError(error.errno, error.strerror, args.out) from error  # at least name the run directory
    if args.json:
        print_json(summary)
    else:
        print(summary_text(summary, args.out))
    return 0 if summary["status"] == "finished" else 1


def summary_text(summary: dict[str, Any], out: str) -> str:
    """Two or three lines for a person from a run's ``summary.json`` contents (``train_run``'s return value):
    status, model, tokens, FLOPs, steps and time; the losses; where the whole summary is."""
    from chinchilla.fit.progress import format_seconds

    status = summary.get("status", "?")
    head = (
        f"{status}: {summary.get('model')} ({summary.get('n_params', 0):,} parameters), "
        f"{summary.get('tokens', 0):,} tokens, {summary.get('flops', 0):.3g} FLOPs, "
        f"{summary.get('steps', 0):,}/{summary.get('total_steps', 0):,} steps of {summary.get('batch_size')} "
        f"x {summary.get('seq_len')} tokens in {format_seconds(summary.get('wall_time_s') or 0.0)}"
    )
    losses = [
        f"{label} {summary[key]:.4f}"
        for key, label in (
            ("train_loss_tail", f"train loss (mean of the last {summary.get('train_loss_tail_steps')} steps)"),
            ("eval_loss", "eval loss"),
        )
        if isinstance(summary.get(key), (int, float))
    ]
    budget, tokens = summary.get("tokens_budget"), summary.get("tokens")
    if isinstance(budget, int) and isinstance(tokens, int) and abs(tokens - budget) > 0.01 * budget:
        head += f" (the budget, {budget:,} tokens, rounded to whole steps)"  # e.g. --tokens 100: one step
    lines = [head]
    if summary.get("reason"):
        lines.append(f"reason: {summary['reason']}")
    if losses:
        lines.append(", ".join(losses))
    lines.append(f"summary: {out.rstrip('/')}/summary.json (--json prints it)")
    return "\n".join(lines)


def _check_orphan_summary(config, out: str) -> None:
    """A run directory whose ``config.json`` is gone but whose ``summary.json`` records a run of another model (or
    budget) is refused, naming both: the trainer would otherwise call it finished and return the other run's
    summary."""
    import json

    from etils import epath

    run_dir = epath.Path(out)
    if (run_dir / "config.json").exists() or not (run_dir / "summary.json").exists():
        return
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return  # the trainer names a damaged summary.json
    if not isinstance(summary, dict):
        return
    recorded = summary.get("model_config")
    differing = []
    if isinstance(recorded, dict):
        mine = config.model.to_dict()
        differing += [
            f"model.{k} {recorded.get(k)!r} (here {mine.get(k)!r})"
            for k in sorted(set(recorded) | set(mine))
            if k != "name" and recorded.get(k, mine.get(k)) != mine.get(k)
        ]
    for key, mine in (("tokens_budget", config.tokens), ("batch_size", config.batch_size)):
        if key in summary and summary[key] != mine:
            differing.append(f"{key} {summary[key]!r} (here {mine!r})")
    name = summary.get("model")
    if name not in (None, config.model.name) or differing:
        raise ValueError(
            f"{run_dir} holds a {summary.get('status', 'recorded')} run of model {name!r}, not "
            f"{config.model.name!r} ({run_dir / 'summary.json'}; its config.json is missing)"
            + (f": {', '.join(differing[:3])}" if differing else "")
            + "; train in a new --out, or restore config.json"
        )


@contextlib.contextmanager
def _library_log_to(out: str, name: str, enabled: bool) -> Iterator[None]:
    """While training: absl's log records (orbax reports a failed background save with pages of tracebacks there)
    go to ``out/name`` instead of the terminal, so that an error ends in its one line (a local ``out`` only)."""
    if not enabled or "://" in out:
        yield
        return
    logger = logging.getLogger("absl")
    handler = _QuietFileHandler(os.path.join(out, name), delay=True)  # opened at the first record
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        with contextlib.suppress(OSError):  # a full disk: the error being raised is the one to report
            handler.close()


class _QuietFileHandler(logging.FileHandler):
    """A log file that drops what it cannot write (a full disk) instead of printing pages about it."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass
