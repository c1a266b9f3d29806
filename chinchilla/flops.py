"""Exact parameter and FLOP accounting from a model shape (Hoffmann et al. 2022, Appendix F; Kaplan et al. 2020).

Pure Python integers: exact, importable without jax or flax, usable from the fitter, the planner and the CLI.

Conventions (each function says which it implements):

- **Appendix F** forward FLOPs per sequence of T tokens, with a factor 2 per multiply-accumulate, w = kv_size*n_heads:
  embeddings 2*T*V*d; per layer Q,K,V 2*3*T*d*w, key@query logits 2*T*T*w, softmax 3*h*T*T, softmax@value 2*T*T*w,
  output projection 2*T*w*d, dense 2*T*(d*f + d*f); final logits 2*T*d*V. Backward = 2 x forward, so
  training = 3 x forward. The causal mask is ignored (the full T x T attention is counted), as in the paper.
- **6ND**: 6 * total parameters * tokens.
- **Kaplan**: 6 * non-embedding parameters * tokens (Kaplan et al. 2020, eq. 2.1 with C = 6ND).
- **Table A4 convention**: Appendix F *without* the embedding and final-logit terms, over 6ND with N counted for the
  paper's architecture. Only with this numerator do the published ratios (1.03 ... 0.99) come out; the paper's text
  says the embeddings are counted, so both are offered and named.

Conventions that modern ladders are counted in (training FLOPs per token, all by :func:`flops_per_token`; w =
kv_size * n_heads, w_kv = kv_size * n_kv_heads, L layers, d = d_model, f = ffw_size, V = vocab, T = seq_len):

- **Grouped / multi-query attention** (``ModelConfig.n_kv_heads`` < n_heads) is a shape, not a convention: every
  count below uses w_kv for the K and V projections (Appendix F's Q,K,V term becomes 2*T*d*(w + 2*w_kv)); the
  attention logits and reduction are unchanged (every query head still attends over T keys).
- **MaxText** (``maxtext``; MaxText's ``calculate_tflops_training_per_device`` since 2025): every matmul once at
  2 FLOPs per multiply-accumulate, 3x for training: 3 * (L * (2*d*(w + 2*w_kv) + 2*w*d + 4*d*f) + 2*d*V) for the
  weights (the logits matmul counted, the embedding lookup not), plus the attention 3 * L * 4*T*w / 2: the causal
  half of the T x T scores. No softmax term.
- **Porian et al. 2024** (``porian``; "Resolving Discrepancies in Compute-Optimal Scaling of Language Models",
  arXiv 2406.19146, after Kaplan et al. 2020, Table 1): 6 * N + 6 * T * w * L with N the non-embedding parameters
  plus the output head's d*V (the last layer's cost, which Kaplan's N leaves out).
- **DeepSeek** (``deepseek``; DeepSeek LLM, arXiv 2401.02954, Section 3.1: "non-embedding FLOPs/token" M =
  72 * L * d^2 + 12 * L * d * T): generalised to any shape as 6 * L * (d*(w + 2*w_kv) + w*d + 2*d*f) + 12 * L * w * T,
  which is exactly 72*L*d^2 + 12*L*d*T when w = w_kv = d and f = 4d. Norms, biases, embeddings and the head are left
  out, as M leaves them out.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

from chinchilla.config import ModelConfig

FORWARD_COMPONENTS: tuple[str, ...] = (
    "embeddings",
    "qkv",
    "attention_logits",
    "softmax",
    "attention_reduction",
    "output_projection",
    "dense",
    "final_logits",
)
PER_LAYER_COMPONENTS = frozenset(
    {"qkv", "attention_logits", "softmax", "attention_reduction", "output_projection", "dense"}
)


@dataclasses.dataclass(frozen=True)
class ParamCount:
    """Parameters of a shape, by group.

    ``embedding`` is the input token embedding; ``head`` the separate output-logit matrix (0 when tied, and always 0
    for the paper's architecture, which shares one matrix); ``non_embedding`` = total - embedding - head (Kaplan's N).
    ``groups`` splits the whole model into named parts that add up to ``total``.
    """

    groups: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.groups.values())

    @property
    def embedding(self) -> int:
        return self.groups["embedding"]

    @property
    def head(self) -> int:
        return self.groups.get("head", 0)

    @property
    def non_embedding(self) -> int:
        return self.total - self.embedding - self.head


def param_count(config: ModelConfig) -> ParamCount:
    """Parameters of ``config`` under its architecture (see ``chinchilla.config``), split into groups.

    Paper ("chinchilla"), per layer: Q,K,V 3*d*w + 3*w; relative positions d*w + 2*w; output w*d + d;
    dense d*f + f + f*d + d; norms 4*d. Plus final norm 2*d and one shared V*d matrix. (Table A4's N.)
    Ours ("rotary"), per layer: Q,K,V,O 4*d*w; dense 2*d*f; two RMSNorm scales 2*d. Plus final norm d, the input
    embedding V*d and, unless tied, an output head d*V. With n_kv_heads < n_heads, K and V have width w_kv instead of
    w (and, in the paper's architecture, biases of that width).
    """
    L, d, f, w, V = config.n_layers, config.d_model, config.ffw_size, config.attention_width, config.vocab_size
    kv = config.kv_width  # = w unless grouped/multi-query attention: K and V have n_kv_heads heads
    if config.architecture == "chinchilla":
        groups = {
            "embedding": V * d,
            "attention": L * (d * (w + 2 * kv) + w + 2 * kv + w * d + d),
            "relative_position": L * (d * w + 2 * w),
            "dense": L * (d * f + f + f * d + d),
            "norms": L * 4 * d + 2 * d,
        }
    else:
        groups = {
            "embedding": V * d,
            "attention": L * (2 * d * w + 2 * d * kv),
            "dense": L * 2 * d * f,
            "norms": L * 2 * d + d,
            "head": 0 if config.tie_embeddings else d * V,
        }
    return ParamCount(groups)


def forward_flops_components(config: ModelConfig) -> dict[str, int]:
    """Appendix F forward FLOPs per sequence of ``seq_len`` tokens, per component, summed over layers (the Q,K,V
    term with K and V of width w_kv = kv_size * n_kv_heads under grouped/multi-query attention)."""
    L, d, f, h, w = config.n_layers, config.d_model, config.ffw_size, config.n_heads, config.attention_width
    T, V = config.seq_len, config.vocab_size
    per_layer = {
        "qkv": 2 * T * d * (w + 2 * config.kv_width),
        "attention_logits": 2 * T * T * w,
        "softmax": 3 * h * T * T,
        "attention_reduction": 2 * T * T * w,
        "output_projection": 2 * T * w * d,
        "dense": 2 * T * (d * f + d * f),
    }
    components = {"embeddings": 2 * T * V * d}
    components.update({name: L * value for name, value in per_layer.items()})
    components["final_logits"] = 2 * T * d * V
    return components


def forward_flops_per_sequence(config: ModelConfig) -> int:
    """Appendix F forward FLOPs for one sequence: embeddings + n_layers * (attention + dense) + final logits."""
    return sum(forward_flops_components(config).values())


def training_flops_per_sequence(config: ModelConfig) -> int:
    """Appendix F training FLOPs for one sequence: forward + backward = 3 x forward."""
    return 3 * forward_flops_per_sequence(config)


def table_a4_flops_per_sequence(config: ModelConfig) -> int:
    """Training FLOPs per sequence under the Table A4 convention: 3 x Appendix F forward without the embedding and
    final-logit terms (the convention that reproduces the published ratios; see the module docstring)."""
    components = forward_flops_components(config)
    return 3 * sum(v for k, v in components.items() if k in PER_LAYER_COMPONENTS)


def table_a4_ratio(config: ModelConfig) -> float:
    """Table A4's "ours / 6ND" for one sequence (D = seq_len), N counted for the paper's architecture."""
    paper = config.replace(architecture="chinchilla")
    return table_a4_flops_per_sequence(config) / six_nd(param_count(paper).total, config.seq_len)


def six_nd(n_params: float, tokens: float) -> float:
    """The usual approximation C = 6 N D (2 FLOPs per parameter per token forward, 4 backward)."""
    return 6 * n_params * tokens


def kaplan_flops(config: ModelConfig, tokens: float) -> float:
    """Kaplan et al. 2020: C = 6 * N_non-embedding * D."""
    return six_nd(param_count(config).non_embedding, tokens)


def training_flops_per_token(config: ModelConfig) -> float:
    """Appendix F training FLOPs per token (3 x forward per sequence / seq_len)."""
    return training_flops_per_sequence(config) / config.seq_len


def training_flops(config: ModelConfig, tokens: float) -> float:
    """Exact (Appendix F) training FLOPs for ``tokens`` tokens of ``config``."""
    _check_positive("tokens", tokens)
    return training_flops_per_token(config) * tokens


def tokens_for_flops(config: ModelConfig, flops: float) -> float:
    """The inverse of ``training_flops``: how many tokens a FLOP budget buys for ``config`` (not rounded)."""
    _check_positive("flops", flops)
    return flops / training_flops_per_token(config)


def maxtext_flops_per_token(config: ModelConfig) -> float:
    """MaxText's training FLOPs per token: every matmul, 3x, with the causal half of attention (module docstring)."""
    L, d, f, w, V, T = (
        config.n_layers,
        config.d_model,
        config.ffw_size,
        config.attention_width,
        config.vocab_size,
        config.seq_len,
    )
    weights = L * (2 * d * (w + 2 * config.kv_width) + 2 * w * d + 4 * d * f) + 2 * d * V
    return 3 * weights + 3 * L * 4 * T * w / 2


def porian_flops_per_token(config: ModelConfig) -> float:
    """Porian et al. 2024: 6 * (non-embedding parameters + the head's d*V) + 6 * seq_len * w * n_layers."""
    n = param_count(config).non_embedding + config.d_model * config.vocab_size
    return 6 * n + 6 * config.seq_len * config.attention_width * config.n_layers


def deepseek_flops_per_token(config: ModelConfig) -> float:
    """DeepSeek LLM's non-embedding FLOPs per token M (72 L d^2 + 12 L d seq when w = d, f = 4d; module docstring)."""
    L, d, f, w, T = config.n_layers, config.d_model, config.ffw_size, config.attention_width, config.seq_len
    return 6 * L * (d * (w + 2 * config.kv_width) + w * d + 2 * d * f) + 12 * L * w * T


# Training FLOPs per token under each named convention.
CONVENTIONS = {
    "appendix_f": lambda config: training_flops_per_token(config),
    "six_nd": lambda config: six_nd(param_count(config).total, 1),
    "kaplan": lambda config: kaplan_flops(config, 1),
    "table_a4": lambda config: table_a4_flops_per_sequence(config) / config.seq_len,
    "maxtext": maxtext_flops_per_token,
    "porian": porian_flops_per_token,
    "deepseek": deepseek_flops_per_token,
}


def flops_per_token(config: ModelConfig, convention: str = "appendix_f") -> float:
    """Training FLOPs per token of ``config`` under a named convention (:data:`CONVENTIONS`: appendix_f (default),
    six_nd, kaplan, table_a4, maxtext, porian, deepseek; see the module docstring for each formula)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown FLOP convention {convention!r}; known: {', '.join(CONVENTIONS)}")
    return float(CONVENTIONS[convention](config))


def summary(config: ModelConfig) -> dict[str, object]:
    """Everything the accounting knows about one shape, as a JSON-ready dict (the CLI's ``flops --json``)."""
    params = param_count(config)
    forward = forward_flops_per_sequence(config)
    return {
        "name": config.name,
        "architecture": config.architecture,
        "n_layers": config.n_layers,
        "d_model": config.d_model,
        "ffw_size": config.ffw_size,
        "n_heads": config.n_heads,
        "n_kv_heads": config.kv_heads,
        "kv_size": config.kv_size,
        "vocab_size": config.vocab_size,
        "seq_len": config.seq_len,
        "tie_embeddings": config.tie_embeddings,
        "params": params.total,
        "embedding_params": params.embedding,
        "head_params": params.head,
        "non_embedding_params": params.non_embedding,
        "param_groups": dict(params.groups),
        "forward_flops_components": forward_flops_components(config),
        "forward_flops_per_sequence": forward,
        "training_flops_per_sequence": 3 * forward,
        "training_flops_per_token": 3 * forward / config.seq_len,
        "six_nd_per_sequence": six_nd(params.total, config.seq_len),
        "kaplan_per_sequence": kaplan_flops(config, config.seq_len),
        "table_a4_flops_per_sequence": table_a4_flops_per_sequence(config),
        "table_a4_ratio": table_a4_ratio(config),
        "training_flops_per_token_by_convention": {name: flops_per_token(config, name) for name in CONVENTIONS},
    }


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value!r} must be a positive finite number")
