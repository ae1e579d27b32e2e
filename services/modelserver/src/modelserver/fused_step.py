"""The static-cache decode step written out for the architectures we serve, fused on CUDA.

transformers runs one GLM-4 decode step as about 65 kernels per layer: four RMSNorms of
seven elementwise kernels each, three projections, a dozen kernels of interleaved rotary,
and an attention that first copies every KV head once per query head (``repeat_kv``:
16 copies for GLM-4-9B's 32 query and 2 KV heads). Inside a CUDA graph each small kernel
still costs a few microseconds, so on an H100 a batch-1 step of GLM-4-9B took 11.7 ms
where reading the weights takes 5.8 ms (docs/performance.md).

Here the same step is written against the model's own weights, with the same arithmetic
in the same order, in three stages per layer:

* ``attention_in``: RMSNorm, one projection for Q, K and V (their weights concatenated;
  the model's own projections become views of it, so no memory is added), rotary;
* the KV write at the shared column and the attention, with the query heads of each KV
  head laid out as query rows (grouped-query attention without copying K or V);
* ``attention_out``: the output projection, the norms and residuals, the SwiGLU MLP.

On CUDA the two stages (and the final norm with the LM head) go through ``torch.compile``,
whose kernels fuse each run of elementwise work into one (``compiled``); the whole step is
then captured in CUDA graphs as before (:mod:`modelserver.cuda_graphs`). ``fused`` runs the
same functions eagerly (the CPU's choice: compiling there costs minutes at start-up). An
architecture not in :data:`ARCHITECTURES` keeps transformers' own step (``transformers``).

:func:`choose_step` checks the step it built against transformers' step on one real
decode before using it; a step that disagrees, or fails to build or compile, is logged and
replaced by transformers' step, so the service never decodes with a step it has not checked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from modelserver.cpu_linear import is_packed

if TYPE_CHECKING:
    from modelserver.static_kv import StaticKV, StepRunner

log = logging.getLogger(__name__)

DecodeStepMode = Literal["auto", "compiled", "fused", "transformers"]

TOLERANCE = {torch.float32: 1e-3, torch.bfloat16: 5e-2, torch.float16: 2e-2}
"""Largest difference from transformers' logits, relative to their largest magnitude, a step may show."""


# -- the arithmetic (transformers' order of operations, so eager results match it) -----------


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    dtype = x.dtype
    x32 = x.to(torch.float32)
    variance = x32.pow(2).mean(-1, keepdim=True)
    return weight * (x32 * torch.rsqrt(variance + eps)).to(dtype)


def rotate_interleaved(x: torch.Tensor) -> torch.Tensor:
    """GLM's rotation: pairs (x0, x1), (x2, x3)... become (-x1, x0), (-x3, x2)..."""
    return torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2)


def rotate_halves(x: torch.Tensor) -> torch.Tensor:
    """Llama's rotation: the halves (a, b) become (-b, a)."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def interleave_tables(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GLM reads each frequency twice in a row from the first half of the tables."""
    half = cos.shape[-1] // 2
    return cos[..., :half].repeat_interleave(2, dim=-1), sin[..., :half].repeat_interleave(2, dim=-1)


def whole_tables(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return cos, sin


def rotary(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, rotate: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Rotary embedding of the first ``cos.shape[-1]`` features; the rest pass through."""
    width = cos.shape[-1]
    turned, passed = x[..., :width], x[..., width:]
    turned = (turned * cos) + (rotate(turned) * sin)
    return torch.cat([turned, passed], dim=-1) if passed.shape[-1] else turned


@dataclass(frozen=True, slots=True)
class Architecture:
    """How one model family's decoder layer differs from the common pattern."""

    tables: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    rotate: Callable[[torch.Tensor], torch.Tensor]
    sandwich_norms: bool
    """GLM-4 also normalises the attention's and the MLP's output before each residual add."""
    gate_up: Callable[[Any], list[Any]]
    """The MLP's gate and up projections (one module, or two), gate first."""


def _fused_gate_up(mlp: Any) -> list[Any]:
    return [mlp.gate_up_proj]


def _separate_gate_up(mlp: Any) -> list[Any]:
    return [mlp.gate_proj, mlp.up_proj]


ARCHITECTURES: dict[str, Architecture] = {
    "glm4": Architecture(interleave_tables, rotate_interleaved, True, _fused_gate_up),
    # GLM-4.6V's text model: its rotary module already lays the M-RoPE tables out interleaved
    # (in a decode step the three sections read the same position: the row's, offset included)
    "glm4v_text": Architecture(whole_tables, rotate_interleaved, True, _fused_gate_up),
    "llama": Architecture(whole_tables, rotate_halves, False, _separate_gate_up),
}
"""The text model's ``model_type`` → its layer's particulars (GLM-4: the reasoner; GLM-4.6V's
text model: vision ``glm``; Llama: SmolLM2, the embedded reasoner)."""


@dataclass(frozen=True, slots=True)
class Layout:
    """A model's constants, passed whole so that the compiler folds them in (not symbolic inputs)."""

    heads: int
    kv_heads: int
    head_dim: int
    eps: float
    rotate: Callable[[torch.Tensor], torch.Tensor]


def attention_in(
    hidden: torch.Tensor,
    norm: torch.Tensor,
    qkv: torch.Tensor,
    qkv_bias: torch.Tensor | None,
    cos: torch.Tensor,
    sin: torch.Tensor,
    layout: Layout,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q as ``(rows, kv_heads, heads // kv_heads, head_dim)``; K and V as ``(rows, kv_heads, 1, head_dim)``.

    Q's query heads are grouped by the KV head they read, as rows of one attention call.
    """
    rows, heads, kv_heads, head_dim = hidden.shape[0], layout.heads, layout.kv_heads, layout.head_dim
    mixed = F.linear(rms_norm(hidden, norm, layout.eps), qkv, qkv_bias)
    q_width, kv_width = heads * head_dim, kv_heads * head_dim
    q = mixed[..., :q_width].view(rows, 1, heads, head_dim).transpose(1, 2)
    k = mixed[..., q_width : q_width + kv_width].view(rows, 1, kv_heads, head_dim).transpose(1, 2)
    v = mixed[..., q_width + kv_width :].view(rows, 1, kv_heads, head_dim).transpose(1, 2)
    q, k = rotary(q, cos, sin, layout.rotate), rotary(k, cos, sin, layout.rotate)
    return q.reshape(rows, kv_heads, heads // kv_heads, head_dim), k, v.contiguous()


def attention_out(
    attended: torch.Tensor,
    residual: torch.Tensor,
    layout: Layout,
    o_proj: torch.Tensor,
    post_attention_norm: torch.Tensor | None,
    mlp_norm: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    post_mlp_norm: torch.Tensor | None,
) -> torch.Tensor:
    """The layer after its attention: output projection, residuals, norms, the SwiGLU MLP."""
    eps = layout.eps
    out = F.linear(attended, o_proj)
    if post_attention_norm is not None:
        out = rms_norm(out, post_attention_norm, eps)
    hidden = residual + out
    gate, up = F.linear(rms_norm(hidden, mlp_norm, eps), gate_up).chunk(2, dim=-1)
    out = F.linear(up * F.silu(gate), down)
    if post_mlp_norm is not None:
        out = rms_norm(out, post_mlp_norm, eps)
    return hidden + out


def head(hidden: torch.Tensor, norm: torch.Tensor, layout: Layout, lm_head: torch.Tensor) -> torch.Tensor:
    return F.linear(rms_norm(hidden, norm, layout.eps), lm_head)[:, -1, :]


# -- the step ------------------------------------------------------------------------------


@dataclass(slots=True)
class LayerWeights:
    norm: torch.Tensor
    qkv: torch.Tensor
    qkv_bias: torch.Tensor | None
    o_proj: torch.Tensor
    post_attention_norm: torch.Tensor | None
    mlp_norm: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor
    post_mlp_norm: torch.Tensor | None


def _concatenated(modules: list[Any], name: str) -> torch.Tensor | None:
    """One tensor of the modules' ``name`` parameters stacked by rows; each module's becomes a view of it."""
    parts = [getattr(m, name) for m in modules]
    if all(p is None for p in parts):
        return None
    if any(p is None for p in parts):
        raise ValueError(f"some projections have a {name} and some do not")
    if len(parts) == 1:
        return parts[0].data
    joined = torch.cat([p.data for p in parts])
    offset = 0
    for module, part in zip(modules, parts, strict=True):
        rows = part.shape[0]
        getattr(module, name).data = joined[offset : offset + rows]
        offset += rows
    return joined


def _layer_weights(layer: Any, architecture: Architecture) -> LayerWeights:
    attn, mlp = layer.self_attn, layer.mlp
    qkv_modules = [attn.q_proj, attn.k_proj, attn.v_proj]
    if architecture.sandwich_norms:
        post_attention, mlp_norm, post_mlp = (
            layer.post_self_attn_layernorm.weight,
            layer.post_attention_layernorm.weight,
            layer.post_mlp_layernorm.weight,
        )
    else:
        post_attention, mlp_norm, post_mlp = None, layer.post_attention_layernorm.weight, None
    qkv, gate_up = _concatenated(qkv_modules, "weight"), _concatenated(architecture.gate_up(mlp), "weight")
    assert qkv is not None and gate_up is not None
    return LayerWeights(
        norm=layer.input_layernorm.weight,
        qkv=qkv,
        qkv_bias=_concatenated(qkv_modules, "bias"),
        o_proj=attn.o_proj.weight,
        post_attention_norm=post_attention,
        mlp_norm=mlp_norm,
        gate_up=gate_up,
        down=mlp.down_proj.weight,
        post_mlp_norm=post_mlp,
    )


class FusedStep:
    """One decode step over the first ``rows`` slots and ``width`` columns of a static cache."""

    def __init__(self, kv: StaticKV, architecture: Architecture, *, compiled: bool) -> None:
        model = kv.model
        config = getattr(model.config, "text_config", None) or model.config
        if getattr(config, "hidden_act", "silu") != "silu":
            raise ValueError(f"activation {config.hidden_act!r} (only silu is written out)")
        inner = model.get_decoder()  # the text model: GLM-4V's language model, a causal LM's body
        self.kv = kv
        self.architecture = architecture
        self.embed = inner.embed_tokens
        self.rotary_tables = inner.rotary_emb
        self.final_norm = inner.norm.weight
        self.lm_head = model.get_output_embeddings().weight
        self.layout = Layout(
            heads=int(config.num_attention_heads),
            kv_heads=kv.shape.kv_heads,
            head_dim=kv.shape.head_dim,
            eps=float(config.rms_norm_eps),
            rotate=architecture.rotate,
        )
        self.scale = float(getattr(inner.layers[0].self_attn, "scaling", kv.shape.head_dim**-0.5))
        self.layers = [_layer_weights(layer, architecture) for layer in inner.layers]
        self.compiled = compiled
        wrap: Callable[[Callable[..., Any]], Callable[..., Any]] = (
            (lambda fn: torch.compile(fn, dynamic=True, fullgraph=True)) if compiled else (lambda fn: fn)
        )
        self.attention_in = wrap(attention_in)
        self.attention_out = wrap(attention_out)
        self.head = wrap(head)

    @property
    def name(self) -> str:
        return "compiled" if self.compiled else "fused"

    def __call__(self, rows: int, width: int) -> torch.Tensor:
        kv = self.kv
        positions = kv.positions[:rows]
        mask = kv.mask[:rows, :, :, :width]
        hidden = self.embed(kv.input_ids[:rows])
        cos, sin = self.architecture.tables(*self.rotary_tables(hidden, positions))
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        layout = self.layout
        for index, w in enumerate(self.layers):
            q, k, v = self.attention_in(hidden, w.norm, w.qkv, w.qkv_bias, cos, sin, layout)
            keys, values = kv.keys[index, :rows, :, :width], kv.values[index, :rows, :, :width]
            keys.index_copy_(2, kv.column, k)
            values.index_copy_(2, kv.column, v)
            attended = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=self.scale)
            attended = attended.reshape(rows, 1, layout.heads * layout.head_dim)
            hidden = self.attention_out(
                attended, hidden, layout, w.o_proj, w.post_attention_norm, w.mlp_norm, w.gate_up,
                w.down, w.post_mlp_norm,
            )  # fmt: skip
        return self.head(hidden, self.final_norm, layout, self.lm_head)


# -- choosing the step ---------------------------------------------------------------------


def _wanted(mode: str, device: torch.device) -> str:
    if mode == "auto":
        return "compiled" if device.type == "cuda" else "fused"
    return mode


def disagreement(kv: StaticKV, step: StepRunner) -> float:
    """How far ``step``'s logits are from transformers' on one real decode (relative to their size).

    Two rows at different positions, each attending to a different run of random history
    (both steps read the same K/V and write the same new column), so a mistake in
    positions, masking or head layout shows. Called at start-up, before any row is cached.
    """
    rows = min(2, kv.slots)
    width = kv.length_buckets[0]
    column = min(5, width - 1)
    saved = kv.mask[:rows].clone()
    generator = torch.Generator(device=kv.device).manual_seed(0)
    try:
        for buffer in (kv.keys, kv.values):  # history the new token must be placed against
            noise = torch.randn(buffer[:, :rows, :, :column].shape, generator=generator, device=kv.device)
            buffer[:, :rows, :, :column] = noise.to(buffer.dtype)
        kv.mask[:rows].fill_(kv.blocked)
        for row in range(rows):
            kv.mask[row, :, :, row : column + 1] = 0.0
        kv.input_ids[:rows, 0] = torch.arange(rows, device=kv.device) + 7
        kv.positions[:rows, 0] = torch.arange(rows, device=kv.device) + column
        kv.column.fill_(column)
        with torch.inference_mode():
            expected = kv.transformers_step(rows, width).float()
            got = step(rows, width).float()
    finally:
        kv.mask[:rows].copy_(saved)
    scale = expected.abs().max().clamp_min(1e-6)
    return float((got - expected).abs().max() / scale)


def choose_step(kv: StaticKV, mode: str) -> tuple[str, StepRunner | None]:
    """The step ``kv`` decodes with: ``(name, step)``, or ``("transformers", None)`` for its own.

    ``mode`` is the ``decode_step`` setting. A written-out step is used only when the model's
    family is in :data:`ARCHITECTURES`, its projections hold plain weights (not the CPU's
    oneDNN-packed ones, :mod:`modelserver.cpu_linear`) and its logits agree with
    transformers' within :data:`TOLERANCE`; anything else is logged and falls back.
    """
    wanted = _wanted(mode, kv.device)
    if wanted == "transformers":
        return "transformers", None
    if is_packed(kv.model):  # its projections hold oneDNN-packed weights only: nothing to join
        log.info("decode step: transformers' (the CPU linears are packed for oneDNN; REASONER_CPU_LINEAR)")
        return "transformers", None
    config = getattr(kv.model.config, "text_config", None) or kv.model.config
    model_type = getattr(config, "model_type", None)
    architecture = ARCHITECTURES.get(str(model_type))
    if architecture is None:
        log.info("decode step: transformers' (no written-out step for model_type %r)", model_type)
        return "transformers", None
    try:
        step = FusedStep(kv, architecture, compiled=wanted == "compiled")
        off = disagreement(kv, step)
    except Exception:  # a model variant this code does not cover, a compiler that fails: fall back
        log.exception("decode step %r could not be built; using transformers' step", wanted)
        return "transformers", None
    tolerance = TOLERANCE.get(kv.dtype, 5e-2)
    if not off <= tolerance:
        log.warning(
            "decode step %r disagrees with transformers' (%.3g > %.3g relative); using transformers' step",
            wanted,
            off,
            tolerance,
        )
        return "transformers", None
    log.info("decode step: %s (%s; %.2g from transformers' logits)", step.name, model_type, off)
    return step.name, step
