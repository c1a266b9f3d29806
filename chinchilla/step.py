"""The compiled training step of a run: model definition, shardings, initial state, a multi-step AdamW update
(several optimizer steps per dispatch in one ``lax.fori_loop``) and the evaluation loss. ``chinchilla.train`` drives
it through a whole run; tests and benchmarks use ``Trainer`` directly.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from chinchilla import accelerators, attention, schedule, sharding
from chinchilla import flops as flops_lib
from chinchilla.model import Decoder, loss_fn
from chinchilla.schedule import COOLDOWN_SHAPES
from chinchilla.train_config import TrainConfig


def choose_compute_dtype(name: str, device: Any = None) -> tuple[jnp.dtype, str]:
    """The matmul dtype for ``compute_dtype=name`` on ``device`` (default: the first jax device), and why.

    "auto": bfloat16 where the chip multiplies bf16 in hardware (TPUs, NVIDIA compute capability >= 8.0, AMD MI200
    and newer: ``chinchilla.accelerators.supports_bfloat16``), float32 elsewhere: on CPU (bf16 matmuls are slow
    there and gain nothing) and on GPUs without bf16 (T4, V100; float16 would need loss scaling, which the step
    does not do). An explicit "float32" or "bfloat16" is used as given.
    """
    if name != "auto":
        return jnp.dtype(name), f"compute_dtype={name!r} given"
    device = jax.devices()[0] if device is None else device
    if device.platform == "cpu":
        return jnp.dtype(jnp.float32), "auto: CPU (bf16 matmuls are not faster there)"
    bf16, why = accelerators.supports_bfloat16(device)
    return jnp.dtype(jnp.bfloat16 if bf16 else jnp.float32), f"auto: {why}"


def hyperparameters(config: TrainConfig) -> dict[str, np.ndarray]:
    """The optimizer's run-specific numbers, passed to the compiled step as arrays (not baked into it), so runs of
    one model that differ only in length, learning rate or schedule share one compiled program (and the persistent
    compilation cache)."""
    return {
        name: np.float32(value)
        for name, value in (
            ("peak_lr", config.lr),
            ("warmup_steps", config.warmup_steps),
            ("cycle_steps", config.cycle_steps),
            ("final_fraction", config.final_lr_fraction),
            ("weight_decay", config.weight_decay),
            ("grad_clip", config.grad_clip),
            ("wsd", config.schedule == "wsd"),
            ("decay_start", config.decay_start),
            ("total_steps", config.steps),
            ("cooldown_shape", COOLDOWN_SHAPES.index(config.cooldown_shape)),
        )
    }


def adamw_step(
    params: Any, grads: Any, adam_state: Any, step: jax.Array, hp: dict, adam: optax.GradientTransformation
) -> tuple[Any, Any, dict]:
    """One AdamW update (Loshchilov & Hutter 2019) after global-norm clipping, with learning rate lr_t from
    ``chinchilla.schedule.rate`` (the run's cosine or WSD schedule):

        g   <- g * min(1, grad_clip / ||g||_2)
        u   <- Adam(g) = m_hat / (sqrt(v_hat) + eps)         (optax.scale_by_adam: bias-corrected moments)
        p   <- p - lr_t * (u + weight_decay * p)             (decay on matrices only, not on norm scales)

    the same arithmetic as ``optax.chain(optax.clip_by_global_norm(c), optax.adamw(schedule, ..., mask=matrices))``
    with every run-specific number a traced scalar.
    """
    norm = optax.tree.norm(grads)
    scale = jnp.minimum(1.0, hp["grad_clip"] / jnp.maximum(norm, jnp.finfo(jnp.float32).tiny))
    grads = jax.tree.map(lambda g: g * scale, grads)
    directions, adam_state = adam.update(grads, adam_state, params)
    lr = schedule.rate(step, hp)
    params = jax.tree.map(lambda p, u: p - lr * (u + hp["weight_decay"] * p if p.ndim > 1 else u), params, directions)
    return params, adam_state, {"grad_norm": norm, "lr": lr}


class Trainer:
    """The compiled pieces of a run: model definition, shardings, initial state, the multi-step train function and
    the eval function. ``train_run`` drives it; tests and benchmarks use it directly.

    State: ``{"params": pure dict of float32 arrays, "opt_state": Adam moments, "step": int32}``.
    """

    def __init__(self, config: TrainConfig, mesh: jax.sharding.Mesh | None = None):
        self.config = config
        self.mesh = mesh if mesh is not None else sharding.make_mesh(*config.mesh)
        divisor = sharding.batch_divisor(self.mesh)
        if config.batch_size % divisor:
            raise ValueError(
                f"batch_size={config.batch_size} must be a multiple of the data x fsdp mesh size {divisor}"
            )
        if config.batch_size % jax.process_count():
            raise ValueError(
                f"batch_size={config.batch_size} must be a multiple of the process count {jax.process_count()}"
            )
        self.micro_batch_size = config.batch_size if config.micro_batch_size is None else config.micro_batch_size
        if self.micro_batch_size % divisor:
            raise ValueError(
                f"micro_batch_size={self.micro_batch_size} must be a multiple of the data x fsdp mesh "
                f"size {divisor} (each micro-batch is spread over every device)"
            )
        self.compute_dtype, self.compute_dtype_reason = choose_compute_dtype(
            config.compute_dtype, self.mesh.devices.flat[0]
        )
        platform = self.mesh.devices.flat[0].platform
        if config.remat == "offload" and platform not in ("gpu", "cuda", "rocm", "tpu"):
            raise ValueError(
                f"remat='offload' moves saved activations to pinned host memory, which the {platform} "
                "backend does not have; use remat='dots' or 'full'"
            )
        self.attention_impl, self.attention_reason = attention.resolve_impl(
            config.attention_impl, platform=platform, compute_dtype=self.compute_dtype
        )
        self.scan_layers = (
            config.scan_layers if config.scan_layers is not None else (platform != "cpu" or config.remat != "none")
        )
        self.adam = optax.scale_by_adam(b1=config.adam_b1, b2=config.adam_b2, eps=config.adam_eps)
        self.hp = hyperparameters(config)
        self.steps_per_dispatch = config.steps_per_dispatch

        def build(seed: Any = config.seed) -> Decoder:
            return Decoder(
                config.model,
                rngs=nnx.Rngs(seed),
                compute_dtype=self.compute_dtype,
                attention_impl=self.attention_impl,
                remat=config.remat,
                scan_layers=self.scan_layers,
                mesh=self.mesh,
            )

        abstract_model = nnx.eval_shape(build)
        self.graphdef, abstract_params = nnx.split(abstract_model, nnx.Param)
        param_shardings = sharding.param_shardings(abstract_params, self.mesh)
        abstract_params = nnx.to_pure_dict(abstract_params)
        abstract_opt = jax.eval_shape(self.adam.init, abstract_params)
        replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        self.state_shardings = {
            "params": param_shardings,
            "opt_state": sharding.like_params(abstract_opt, abstract_params, param_shardings, self.mesh),
            "step": replicated,
        }
        abstract_state = {
            "params": abstract_params,
            "opt_state": abstract_opt,
            "step": jax.ShapeDtypeStruct((), jnp.int32),
        }
        self.abstract_state = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_state, self.state_shardings
        )
        self.batch_sharding = sharding.batch_sharding(self.mesh, leading_dims=1)
        self.local_batch_size = config.batch_size // jax.process_count()
        # the rows of each global batch this process supplies: the ones its devices hold, in any device order
        self.process_rows = sharding.process_rows(
            self.batch_sharding, (1, config.batch_size, config.model.seq_len + 1), 1, jax.process_count()
        )

        def init(key_data: jax.Array) -> dict:
            # the key is an argument, not a constant of the program: one compile serves every seed (a sweep's two
            # seeds of a shape, a rerun with another seed), where a constant seed compiled init once per seed
            params = nnx.to_pure_dict(nnx.state(build(jax.random.wrap_key_data(key_data)), nnx.Param))
            return {"params": params, "opt_state": self.adam.init(params), "step": jnp.zeros((), jnp.int32)}

        self._init = jax.jit(init, out_shardings=self.state_shardings)
        self._train = jax.jit(
            self._multi_step,
            in_shardings=(self.state_shardings, self.batch_sharding, replicated, replicated),
            out_shardings=(self.state_shardings, replicated),
            donate_argnums=0,
        )
        self._eval = jax.jit(
            self._eval_loss,
            in_shardings=(self.state_shardings["params"], self.batch_sharding),
            out_shardings=replicated,
        )
        self._compiled_train = None

    # -- pure functions ------------------------------------------------------------------------------------------
    def _loss(self, params: Any, batch_bt1: jax.Array) -> jax.Array:
        return loss_fn(nnx.merge(self.graphdef, params), batch_bt1)

    def _micro_batches(self, batch_bt1: jax.Array) -> jax.Array:
        """A global batch [B, T+1] -> micro-batches [B / b, b, T+1] (b = micro_batch_size): micro-batch j holds rows
        j, j + B/b, j + 2B/b, ..., so that each is spread over every device of the batch axes like the batch was."""
        n = batch_bt1.shape[0] // self.micro_batch_size
        micro_nbt1 = batch_bt1.reshape(self.micro_batch_size, n, -1).swapaxes(0, 1)
        return jax.lax.with_sharding_constraint(micro_nbt1, self.batch_sharding)  # [n, b, T+1]: b over the batch axes

    def _loss_and_grads(self, params: Any, batch_bt1: jax.Array) -> tuple[jax.Array, Any]:
        """Mean loss over the batch's B x T target tokens and its gradient, by gradient accumulation: a ``lax.scan``
        over the micro-batches, each contributing (its mean loss) x b / B, with float32 accumulators; the same value
        as one pass over the whole batch up to round-off."""
        if self.micro_batch_size == batch_bt1.shape[0]:
            return jax.value_and_grad(self._loss)(params, batch_bt1)
        micro_nbt1 = self._micro_batches(batch_bt1)
        weight = 1.0 / micro_nbt1.shape[0]  # every sequence has T target tokens: b / B of the batch's tokens

        def accumulate(carry: tuple, micro_bt1: jax.Array) -> tuple[tuple, None]:
            loss_sum, grad_sum = carry
            loss, grads = jax.value_and_grad(self._loss)(params, micro_bt1)
            grad_sum = jax.tree.map(lambda total, g: total + g.astype(jnp.float32) * weight, grad_sum, grads)
            return (loss_sum + loss * weight, grad_sum), None

        zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
        (loss, grads), _ = jax.lax.scan(accumulate, (jnp.zeros((), jnp.float32), zeros), micro_nbt1)
        return loss, grads

    def _multi_step(self, state: dict, batches_kbt1: jax.Array, n_steps: jax.Array, hp: dict) -> tuple[dict, dict]:
        """The first ``n_steps`` (<= k, a traced int) optimizer steps on batches [k, B, T+1], in one loop on the
        device; returns the new state and per-step metrics [k] (zero after n_steps). One compiled program serves
        full dispatches and the shorter last one."""
        k = batches_kbt1.shape[0]

        def body(i: jax.Array, carry: tuple) -> tuple:
            params, opt_state, step, out = carry
            loss, grads = self._loss_and_grads(params, batches_kbt1[i])
            params, opt_state, info = adamw_step(params, grads, opt_state, step, hp, self.adam)
            values = {"loss": loss, **info}
            out = {name: out[name].at[i].set(values[name]) for name in out}
            return params, opt_state, step + 1, out

        out = {name: jnp.zeros((k,), jnp.float32) for name in ("loss", "grad_norm", "lr")}
        carry = (state["params"], state["opt_state"], state["step"], out)
        params, opt_state, step, out = jax.lax.fori_loop(0, n_steps, body, carry)
        return {"params": params, "opt_state": opt_state, "step": step}, out

    def _eval_loss(self, params: Any, batches_nbt1: jax.Array) -> jax.Array:
        """Mean loss over batches [n, B, T+1], each evaluated in micro-batches (the training step's memory plan)."""

        def batch_loss(batch_bt1: jax.Array) -> jax.Array:
            if self.micro_batch_size == batch_bt1.shape[0]:
                return self._loss(params, batch_bt1)
            return jnp.mean(jax.lax.map(lambda micro: self._loss(params, micro), self._micro_batches(batch_bt1)))

        return jnp.mean(jax.lax.map(batch_loss, batches_nbt1))

    # -- host-side API -------------------------------------------------------------------------------------------
    def init_state(self) -> dict:
        key_data = np.asarray(jax.random.key_data(jax.random.key(self.config.seed)))  # nnx.Rngs(seed)'s key
        return self._init(key_data)

    def lowered_step(self) -> Any:
        """The train function lowered for abstract inputs (``jax.stages.Lowered``): ``compiled_step`` compiles it;
        ``chinchilla.memory`` compiles it with its own options to read the memory analysis."""
        k, batch, length = self.steps_per_dispatch, self.config.batch_size, self.config.model.seq_len + 1
        batches = jax.ShapeDtypeStruct((k, batch, length), jnp.int32, sharding=self.batch_sharding)
        scalar = jax.ShapeDtypeStruct((), jnp.int32)
        hp = {name: jax.ShapeDtypeStruct((), jnp.float32) for name in self.hp}
        return self._train.lower(self.abstract_state, batches, scalar, hp)

    def compiled_step(self) -> Any:
        """The train function, compiled ahead of time (once per Trainer)."""
        if self._compiled_train is None:
            self._compiled_train = self.lowered_step().compile()
        return self._compiled_train

    def put_batches(self, local_nbt1: np.ndarray) -> jax.Array:
        """Host batches [n, local B, T+1] of this process -> one global array [n, B, T+1]."""
        return sharding.global_batch(local_nbt1, self.batch_sharding)

    def train(self, state: dict, local_kbt1: np.ndarray) -> tuple[dict, dict]:
        """Run len(local_kbt1) <= steps_per_dispatch steps, asynchronously (block on the returned metrics to wait).
        Returns the new state and per-step metrics ("loss", "grad_norm", "lr", each [steps_per_dispatch])."""
        n = local_kbt1.shape[0]
        if not 1 <= n <= self.steps_per_dispatch:
            raise ValueError(f"{n} batches: a dispatch takes 1 to steps_per_dispatch={self.steps_per_dispatch}")
        if n < self.steps_per_dispatch:
            padding = np.zeros((self.steps_per_dispatch - n, *local_kbt1.shape[1:]), local_kbt1.dtype)
            local_kbt1 = np.concatenate([local_kbt1, padding])
        return self.compiled_step()(state, self.put_batches(local_kbt1), np.int32(n), self.hp)

    def evaluate(self, params: Any, local_nbt1: np.ndarray) -> float:
        """Mean loss over batches [n, local B, T+1]."""
        return float(self._eval(params, self.put_batches(local_nbt1)))

    def flops_per_step(self) -> float:
        """Exact Appendix F training FLOPs of one optimizer step (batch_size sequences)."""
        return self.config.batch_size * flops_lib.training_flops_per_sequence(self.config.model)
