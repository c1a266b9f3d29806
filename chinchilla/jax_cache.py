"""JAX's persistent compilation cache, shared by training and fitting (imports jax only, never flax/orbax/tfds)."""

from __future__ import annotations

import os

import jax


def enable_compilation_cache() -> None:
    """Keep compiled programs on disk (``$CHINCHILLA_JAX_CACHE`` or ~/.cache/chinchilla/jax-compilation-cache) so
    that every run of an already-seen program shape skips XLA compilation, unless the user configured JAX's cache."""
    if jax.config.jax_compilation_cache_dir:
        return
    directory = os.environ.get("CHINCHILLA_JAX_CACHE") or os.path.expanduser(
        "~/.cache/chinchilla/jax-compilation-cache"
    )
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
