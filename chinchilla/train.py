"""One training run, done properly: ``train_run(TrainConfig(...), out_dir)``.

The same entry point runs on one CPU, on 8 fake CPU devices, on a GPU and on a TPU slice:

- a ``(data, fsdp, tensor)`` mesh (``chinchilla.sharding``), parameters laid out by their logical axis names, the
  batch split over ``data`` x ``fsdp``, one jitted step with explicit in/out shardings and donated state;
- AdamW (decoupled weight decay on matrices only) after global-norm gradient clipping, with a linear warm-up and a
  10x cosine decay whose cycle length is a parameter (``chinchilla.schedule``);
- float32 master weights; bfloat16 matmuls on accelerators that have bf16 units, float32 on CPU and on older GPUs
  (``compute_dtype="auto"``; the choice and its reason are in ``summary.json``);
- ``steps_per_dispatch`` optimizer steps per call (a ``lax.fori_loop`` on the device) and one host sync per call:
  the per-step losses come back together, so every step's loss can be logged without slowing the step;
- orbax checkpoints of parameters, optimizer state, step and data-iterator state at dispatch boundaries. A run
  restarted after any crash (even SIGKILL) resumes from its latest checkpoint and reproduces, on the same hardware,
  exactly the losses of an uninterrupted run, step by step;
- ``metrics.jsonl`` (one JSON line per logged step: step, tokens, flops = cumulative exact Appendix F training FLOPs,
  loss, lr, grad_norm, step_time, tokens_per_s, mfu, and eval_loss where evaluated), ``config.json``, and a
  ``summary.json`` written atomically at the end (status "finished", or "failed" with the reason after a NaN/inf
  loss, which stops the run and keeps the last good checkpoint).

A token budget of D tokens is trained as round(D / (batch_size * seq_len)) steps (at least one); the summary
records the tokens and FLOPs actually trained.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import sys
import time
import warnings
from typing import Any

import jax
import numpy as np
from etils import epath

from chinchilla import flops as flops_lib
from chinchilla import interrupts, metrics, runfiles, runlock, sharding
from chinchilla.checkpoint import Checkpointer
from chinchilla.jax_cache import enable_compilation_cache
from chinchilla.step import Trainer
from chinchilla.train_config import BRANCH_FIELDS, EXECUTION_FIELDS, REPORTING_FIELDS, TrainConfig

GPU_MEMORY_FRACTION = "0.92"  # of a GPU's memory for JAX's pool: the plans' 85% peaks plus cuDNN workspaces
BRANCH_POINTS = "branch_points"  # <run>/branch_points/<step>: checkpoints kept for good (TrainConfig.save_steps)
BRANCH_POINTS_KEEP = 10_000
TRAIN_LOSS_TAIL_STEPS = 10  # summary.json's train_loss_tail: the mean loss of the last this-many steps
EVAL_SEED = 0  # every run evaluates on the same validation batches
QUARANTINE_FILE = "metrics.quarantine.jsonl"  # metrics.jsonl lines a resume could not parse, with line numbers


def train_run(config: TrainConfig, out_dir: Any, progress: bool = True, *, break_lock: bool = False) -> dict:
    """Train ``config`` in ``out_dir`` (created if needed) and return its summary.

    Resumes from the latest checkpoint when ``out_dir`` holds one; when ``out_dir`` already holds a finished (or
    failed) run, does nothing and returns its summary. Raises ValueError when ``out_dir`` holds a run of another
    config or a damaged ``config.json``/``summary.json`` (naming the file), and ``runlock.RunLockedError`` (a
    ValueError naming the holder) while another process trains in ``out_dir``; ``break_lock`` as in
    ``runlock.hold``.

    On a GPU, JAX preallocates 75% of the card unless told otherwise; the memory plans (``chinchilla memory``) use up
    to 85%, so unless ``XLA_PYTHON_CLIENT_MEM_FRACTION`` is set it is set to ``GPU_MEMORY_FRACTION`` here, which takes
    effect when this is the process's first JAX use (a fresh ``chinchilla train``/``sweep``, not a notebook that
    already ran JAX on the GPU: set the variable before importing jax there).
    """
    os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", GPU_MEMORY_FRACTION)
    sharding.maybe_initialize_distributed()  # before any other JAX call
    if jax.process_index() != 0:  # one lock per run: process 0 holds it for the whole (multi-host) job
        return _train_run(config, out_dir, progress)
    with runlock.hold(out_dir, break_lock=break_lock):
        return _train_run(config, out_dir, progress)


def _read_run_json(path: Any, fix: str) -> dict:
    """A run's JSON object file, or ValueError naming the file and what is wrong with it."""
    try:
        value = runfiles.read_json(path)
    except ValueError as error:
        raise ValueError(f"{path} is damaged ({error}); {fix}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} holds a JSON {type(value).__name__}, not an object; {fix}")
    return value


def _train_run(config: TrainConfig, out_dir: Any, progress: bool) -> dict:
    out = epath.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config_path, summary_path = out / runfiles.CONFIG_FILE, out / runfiles.SUMMARY_FILE
    if config_path.exists():
        saved = _read_run_json(config_path, "restore it, or train in a new directory")
        mine = config.to_dict()
        defaults = {
            field.name: list(field.default) if isinstance(field.default, tuple) else field.default
            for field in dataclasses.fields(TrainConfig)
        }
        # a field the saved config lacks (written before the field existed) counts as its default
        differing = sorted(
            key
            for key in set(saved) | set(mine)
            if saved.get(key, defaults.get(key)) != mine.get(key) and key not in REPORTING_FIELDS + EXECUTION_FIELDS
        )
        if differing:
            changes = ", ".join(
                f"{key} {saved.get(key, defaults.get(key))!r} there, {mine.get(key)!r} here" for key in differing
            )
            raise ValueError(f"{out} holds a run with another config ({changes}); use a new directory")
    if summary_path.exists():
        summary = _read_run_json(summary_path, "delete it to resume the run from its last checkpoint")
        if summary.get("status") not in ("finished", "failed"):
            raise ValueError(
                f"{summary_path}: status={summary.get('status')!r} is not 'finished' or 'failed'; "
                "delete the file to resume the run from its last checkpoint"
            )
        _say(True, f"{out}: run already {summary['status']} ({summary.get('steps', '?')} steps); nothing to do")
        return summary

    from chinchilla import data  # the data pipeline: imported here so that importing train stays light

    wall_start = time.perf_counter()
    enable_compilation_cache()
    trainer = Trainer(config)
    train_data = data.batches(
        config.dataset,
        split="train",
        tokenizer=config.tokenizer,
        seq_len=config.model.seq_len,
        batch_size=trainer.local_batch_size,
        seed=config.seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        data_dir=config.data_dir,
        rows=trainer.process_rows,
        min_tokens=max(
            config.data_tokens or 0, data.tokens_needed(config.steps, config.batch_size, config.model.seq_len)
        ),
    )
    if train_data.vocab_size > config.model.vocab_size:
        raise ValueError(
            f"tokenizer={config.tokenizer!r} has {train_data.vocab_size} tokens but "
            f"model.vocab_size={config.model.vocab_size}"
        )
    eval_data, eval_split = _eval_batches(data, config, trainer)  # now, so that a missing split fails before training
    if not config_path.exists() and jax.process_index() == 0:
        runfiles.write_json_atomic(config_path, config.to_dict())
    total_steps = config.steps
    trained_tokens = total_steps * config.tokens_per_step
    epochs = trained_tokens / train_data.tokens_per_epoch
    if epochs > 1:
        warnings.warn(
            f"{out}: {trained_tokens:,} training tokens are {epochs:.2f} epochs of dataset="
            f"{config.dataset!r} ({train_data.tokens_per_epoch:,} tokens): data will repeat",
            data.DataRepeatWarning,
            stacklevel=2,
        )

    checkpointer = Checkpointer(out / "checkpoints", keep=config.keep_checkpoints)
    branch_points = Checkpointer(out / BRANCH_POINTS, keep=BRANCH_POINTS_KEEP) if config.save_steps else None
    metrics_path = out / runfiles.METRICS_FILE
    restored = checkpointer.restore_latest(trainer.abstract_state)  # skips (and warns about) incomplete steps
    latest = None if restored is None else restored[0]
    live = metrics.tensorboard_writer(out, resumed_from=latest)  # CHINCHILLA_TENSORBOARD: process 0's event files
    if latest is None and config.init_from is not None:  # a branch: start from its trunk's state at the branch point
        branch_step, state, meta, trunk_rows = _branch_start(config, trainer, out)
        train_data.set_state(meta["data"])
        if jax.process_index() == 0:
            runfiles.rewrite_jsonl(metrics_path, trunk_rows)
        _say(progress, f"{out}: branching from {config.init_from} at step {branch_step} of {total_steps}")
        if live:
            live.write(trunk_rows)  # a branch's curve starts with its trunk's
    elif latest is None:
        state = trainer.init_state()
        meta = {"wall_time_s": 0.0, "recent_losses": [], "eval_loss": None}
        if jax.process_index() == 0:
            runfiles.rewrite_jsonl(metrics_path, [])
    else:
        _, state, meta = restored
        train_data.set_state(meta["data"])
        if jax.process_index() == 0:  # drop only the rows past the checkpoint; keep what cannot be parsed aside
            note = runfiles.truncate_jsonl_after(metrics_path, latest, out / QUARANTINE_FILE)
            if note:
                _say(True, f"{out}: {note}")
        _say(progress, f"{out}: resuming from step {latest} of {total_steps}")
    step = int(jax.device_get(state["step"]))

    peak, peak_source = metrics.peak_flops(compute_dtype=trainer.compute_dtype, override=config.peak_flops)
    flops_per_step = trainer.flops_per_step()
    recent = collections.deque(meta["recent_losses"], maxlen=TRAIN_LOSS_TAIL_STEPS)
    eval_loss = meta["eval_loss"]
    elapsed_before = meta["wall_time_s"]
    compile_start = time.perf_counter()
    k_full = config.steps_per_dispatch
    if step < total_steps:
        trainer.compiled_step()
    compile_time = time.perf_counter() - compile_start
    session_start = time.perf_counter()

    bar = _progress_bar(progress, total_steps, step, config.model.name or "run")
    status, reason = "finished", None
    next_batches = (
        _take(train_data, _dispatch(step, k_full, total_steps, config.save_steps)) if step < total_steps else None
    )
    data_state = train_data.get_state()
    last_sync = time.perf_counter()
    # One process: Ctrl-C / SIGTERM end the dispatch in flight, save a checkpoint there and stop (a second signal stops
    # at once). Several processes save collectively, so there a signal to one of them stops it at once, and the run
    # resumes from its last periodic checkpoint.
    stop_safely = interrupts.deferred() if jax.process_count() == 1 else contextlib.nullcontext()
    try:
        with stop_safely:
            while step < total_steps:
                k = next_batches.shape[0]
                state, out_metrics = trainer.train(state, next_batches)
                dispatch_data_state = data_state
                if step + k < total_steps:  # fetch the next batches while the device works
                    next_batches = _take(train_data, _dispatch(step + k, k_full, total_steps, config.save_steps))
                    data_state = train_data.get_state()
                host = {name: values[:k] for name, values in jax.device_get(out_metrics).items()}
                now = time.perf_counter()
                step_time = (now - last_sync) / k
                last_sync = now
                losses = np.asarray(host["loss"], np.float64)
                bad = np.flatnonzero(~np.isfinite(losses))
                good = k if bad.size == 0 else int(bad[0])
                rows = []
                for i in range(good):
                    recent.append(float(losses[i]))
                    if (step + i + 1) % config.log_every == 0 or step + i + 1 == total_steps:
                        rows.append(_row(step + i + 1, config, flops_per_step, losses[i], host, i, step_time, peak))
                if bad.size:
                    status = "failed"
                    reason = f"non-finite loss {losses[good]} at step {step + good + 1}"
                    if jax.process_index() == 0:
                        runfiles.append_jsonl(metrics_path, rows)
                    if live:
                        live.write(rows)
                    break
                previous, step = step, step + k
                if step == total_steps or _crossed(previous, step, config.eval_every):
                    eval_loss = trainer.evaluate(state["params"], eval_data)
                    if rows and rows[-1]["step"] == step:
                        rows[-1]["eval_loss"] = eval_loss
                    else:
                        rows.append(
                            {
                                **_row(step, config, flops_per_step, losses[-1], host, k - 1, step_time, peak),
                                "eval_loss": eval_loss,
                            }
                        )
                if jax.process_index() == 0:
                    runfiles.append_jsonl(metrics_path, rows)
                if live:
                    live.write(rows)
                at_branch_point = step in config.save_steps
                stopping = interrupts.pending() is not None
                if (
                    step == total_steps
                    or at_branch_point
                    or stopping
                    or _crossed(previous, step, config.checkpoint_every)
                ):
                    meta = {
                        "data": dispatch_data_state,
                        "recent_losses": list(recent),
                        "eval_loss": eval_loss,
                        "wall_time_s": elapsed_before + time.perf_counter() - session_start,
                    }
                    checkpointer.save(step, state, meta)
                    if at_branch_point:  # kept for good: branches start here (TrainConfig.init_from)
                        branch_points.save(step, state, meta)
                last_sync = time.perf_counter()  # evaluation and checkpointing do not count as step time
                bar.update(k)
                bar.set_postfix(loss=f"{float(np.mean(losses)):.4f}")
                if stopping:
                    _say(progress, f"{out}: stopped at step {step} of {total_steps}, checkpoint saved")
                    interrupts.check()
    finally:
        bar.close()
        if live:
            live.close()
        checkpointer.wait()
        checkpointer.close()
        if branch_points is not None:
            branch_points.wait()
            branch_points.close()

    if status == "failed":
        _say(progress, f"{out}: FAILED: {reason}; the last good checkpoint is kept")
    session_time = time.perf_counter() - session_start
    trained_steps = step
    summary = {
        "status": status,
        "reason": reason,
        "model": config.model.name,
        "model_config": config.model.to_dict(),
        "n_params": flops_lib.param_count(config.model).total,
        "non_embedding_params": flops_lib.param_count(config.model).non_embedding,
        "tokens": trained_steps * config.tokens_per_step,
        "tokens_budget": config.tokens,
        "flops": trained_steps * flops_per_step,
        "flops_6nd": flops_lib.six_nd(
            flops_lib.param_count(config.model).total, trained_steps * config.tokens_per_step
        ),
        # not results.csv's final_train_loss (the last point of the smoothed curve, what the fits use): another name
        "train_loss_tail": float(np.mean(recent)) if recent else None,
        "train_loss_tail_steps": len(recent),
        "eval_loss": eval_loss,
        "steps": trained_steps,
        "total_steps": total_steps,
        "batch_size": config.batch_size,
        "seq_len": config.model.seq_len,
        "epochs": epochs,
        "wall_time_s": elapsed_before + session_time,
        "compile_time_s": compile_time,
        "setup_time_s": compile_start - wall_start,
        "peak_flops": peak,
        "peak_source": peak_source,
        "devices": jax.device_count(),
        "processes": jax.process_count(),
        "device_kind": jax.devices()[0].device_kind,
        "compute_dtype": str(trainer.compute_dtype),
        "compute_dtype_reason": trainer.compute_dtype_reason,
        "eval_split": eval_split,
        "attention": trainer.attention_impl,
        "attention_reason": trainer.attention_reason,
        "micro_batch_size": trainer.micro_batch_size,
        "remat": config.remat,
        "schedule": config.schedule,
        **(
            {
                "cooldown_fraction": config.cooldown_fraction,
                "cooldown_shape": config.cooldown_shape,
                "init_from": config.init_from,
            }
            if config.schedule == "wsd"
            else {}
        ),
    }
    if jax.process_index() == 0:  # one writer of the run's files; the others wait until summary.json exists
        runfiles.write_json_atomic(summary_path, summary)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("chinchilla.train_run: summary.json written")
    return summary


def _dispatch(step: int, k_full: int, total_steps: int, save_steps: tuple[int, ...]) -> int:
    """Steps in the next dispatch from ``step``: at most ``k_full``, ending at the run's end or at a save step."""
    stops = [total_steps] + [s for s in save_steps if s > step]
    return min(k_full, min(stops) - step)


class TrunkNotReady(ValueError):
    """A branch's trunk has not yet saved the checkpoint it starts from (a sweep runs it later)."""


def _branch_start(config: TrainConfig, trainer: Trainer, out: Any) -> tuple[int, dict, dict, list[dict]]:
    """A branch's starting point: (step, state, checkpoint meta, the trunk's metrics rows up to that step). A
    relative trunk directory is a sibling of the run directory ``out`` (a sweep's runs/ folder).

    Raises ValueError (one line) when the trunk is not this run but for ``BRANCH_FIELDS``, is not a wsd run at a
    constant rate through the branch point, or when this run's own schedule leaves the stable phase before it;
    ``TrunkNotReady`` when the trunk has not saved that step (yet).
    """
    directory, step = config.branch_point
    trunk = epath.Path(directory) if "://" in directory or os.path.isabs(directory) else out.parent / directory
    where = f"init_from={config.init_from!r}"
    if not (trunk / runfiles.CONFIG_FILE).exists():
        raise TrunkNotReady(f"{where}: {trunk} holds no run yet (no config.json); train the trunk first")
    saved = _read_run_json(trunk / runfiles.CONFIG_FILE, "the trunk's config is needed to branch from it")
    mine = config.to_dict()
    differing = sorted(
        key for key in set(saved) | set(mine) if key not in BRANCH_FIELDS and saved.get(key) != mine.get(key)
    )
    if differing:
        raise ValueError(
            f"{where}: the trunk differs from this run in {differing}; a branch may differ only in "
            "its length and cooldown"
        )
    trunk_config = TrainConfig.from_dict(saved)
    if step is None:
        steps = (
            sorted(int(p.name) for p in (trunk / "checkpoints").iterdir() if p.name.isdigit())
            if (trunk / "checkpoints").exists()
            else []
        )
        if not steps:
            raise TrunkNotReady(f"{where}: {trunk} has no checkpoint yet")
        step = steps[-1]
    if config.schedule != "wsd" or trunk_config.schedule != "wsd":
        raise ValueError(
            f"{where}: branching needs schedule='wsd' for the trunk and this run (a cosine run's rate "
            "depends on its length from the first step)"
        )
    if trunk_config.decay_start < step or config.decay_start < step:
        raise ValueError(
            f"{where}: step {step} is past the stable phase (the trunk's cooldown starts at step "
            f"{trunk_config.decay_start}, this run's at {config.decay_start}): the rates before it "
            "would differ"
        )
    if step >= config.steps:
        raise ValueError(f"{where}: step {step} is not before this run's end ({config.steps} steps)")
    if trunk_config.warmup_steps != config.warmup_steps:  # a warm-up in fractions of each run's own length
        raise ValueError(
            f"{where}: the trunk warms up over {trunk_config.warmup_steps} steps and this run over "
            f"{config.warmup_steps}: give both the same warmup_tokens (--warmup-tokens), e.g. "
            f"{trunk_config.warmup_steps * config.tokens_per_step}"
        )
    source = trunk / BRANCH_POINTS if (trunk / BRANCH_POINTS / str(step)).exists() else trunk / "checkpoints"
    if not (source / str(step)).exists():
        raise TrunkNotReady(
            f"{where}: {trunk} has no checkpoint at step {step} yet (save_steps of the trunk must include it)"
        )
    reader = Checkpointer(source, keep=BRANCH_POINTS_KEEP)
    try:
        state, meta = reader.restore(step, trainer.abstract_state)
    finally:
        reader.close()
    rows = [row for row in runfiles.read_jsonl(trunk / runfiles.METRICS_FILE) if row.get("step", 0) <= step]
    meta = {**meta, "wall_time_s": 0.0}  # this run's own time; the trunk's is the trunk's
    return step, state, meta, rows


def _take(iterator: Any, k: int) -> np.ndarray:
    return np.stack([next(iterator) for _ in range(k)])


def _crossed(previous: int, step: int, every: int | None) -> bool:
    """Whether a multiple of ``every`` lies in (previous, step]."""
    return every is not None and step // every > previous // every


def _row(
    step: int,
    config: TrainConfig,
    flops_per_step: float,
    loss: float,
    host: dict,
    i: int,
    step_time: float,
    peak: float,
) -> dict:
    return {
        "step": step,
        "tokens": step * config.tokens_per_step,
        "flops": step * flops_per_step,
        "loss": float(loss),
        "lr": float(host["lr"][i]),
        "grad_norm": float(host["grad_norm"][i]),
        "step_time": step_time,
        "tokens_per_s": config.tokens_per_step / step_time,
        "mfu": metrics.mfu(flops_per_step, step_time, peak),
    }


def _eval_batches(data: Any, config: TrainConfig, trainer: Trainer) -> tuple[np.ndarray, str]:
    """The fixed evaluation batches and the split they come from (``eval_split``, or "test" / a held-out slice
    of train when the data set has no such split: ``data.resolve_split``)."""
    iterator = data.batches(
        config.dataset,
        split=config.eval_split,
        tokenizer=config.tokenizer,
        seq_len=config.model.seq_len,
        batch_size=trainer.local_batch_size,
        seed=EVAL_SEED,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        data_dir=config.data_dir,
        warn_repeats=False,
        rows=trainer.process_rows,
        min_tokens=data.tokens_needed(config.eval_batches, config.batch_size, config.model.seq_len),
    )
    return _take(iterator, config.eval_batches), iterator.split_used


def _say(enabled: bool, message: str) -> None:
    if enabled and jax.process_index() == 0:
        print(message, file=sys.stderr)


LOG_PROGRESS_INTERVAL_S = 30.0  # a progress line this often when stderr is a file or a pipe, not a terminal


def _progress_bar(enabled: bool, total: int, initial: int, name: str) -> Any:
    """tqdm's bar on a terminal or in a notebook; on a file or pipe (a job's log), a plain line every
    ``LOG_PROGRESS_INTERVAL_S`` seconds instead of carriage-return frames many times a second."""
    from tqdm.auto import tqdm

    to_log = not sys.stderr.isatty() and "ipykernel" not in sys.modules
    return tqdm(
        total=total,
        initial=initial,
        desc=name,
        unit="step",
        disable=not enabled or jax.process_index() != 0,
        dynamic_ncols=not to_log,
        ncols=100 if to_log else None,
        mininterval=LOG_PROGRESS_INTERVAL_S if to_log else 0.1,
        file=_Lines(sys.stderr) if to_log else sys.stderr,
    )


class _Lines:
    """A stream for tqdm that writes each refresh as its own line (no carriage returns or cursor moves)."""

    def __init__(self, stream: Any):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").replace("\x1b[A", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()
