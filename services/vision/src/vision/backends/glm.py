"""``glm``: GLM-4.6V-Flash (or any image-text-to-text checkpoint with a chat template) on transformers.

Loading. ``VISION_MODEL`` is a local checkpoint folder or a Hugging Face id (resolved from
the local HF cache, or the hub where reachable). The model class comes from
``AutoModelForImageTextToText``'s mapping, falling back to :data:`MODEL_CLASSES` by
``config.model_type`` (GLM-4.6V-Flash's config says ``glm4v``; transformers 5 also has
``glm46v``). dtype ``auto`` = bfloat16 on CUDA, float32 on the CPU; device ``auto`` = the
first GPU, else the CPU. Before any weight is read the parameter count (from a meta-device
skeleton) × dtype size is checked against free memory.

Images. The processor resizes each image to fit the pixel budget
(``VISION_IMAGE_MIN_PIXELS`` / ``VISION_IMAGE_MAX_PIXELS``, pixels per image after
resizing): GLM cuts 14×14 patches and merges 2×2 of them into one token, so an image costs
about ``width × height / 784`` tokens after resizing (1024×1024 → ~1300 tokens; the default
budget of 1 MP matches the gateway's 1024-px cap).

Thinking. Off by default: the chat template gets ``enable_thinking=False`` (GLM then
pre-fills an empty ``<think></think>``). A request's ``enable_thinking`` or
``VISION_ENABLE_THINKING=true`` turns it on. Whatever the model writes between ``<think>``
and ``</think>`` is emitted as reasoning (→ ``reasoning_content``), never as content.

Box markers. GLM wraps final answers in ``<|begin_of_box|>…<|end_of_box|>``; the markers
are removed and the text inside kept (``<|begin_of_box|>42<|end_of_box|>`` → ``42``).

Structured output. ``response_format`` json_object / json_schema is enforced while decoding
(:mod:`modelserver.structured`, a per-row grammar over the logits), so the answer always
parses and matches the schema; a schema that cannot be compiled is a 400. A structured
answer has no thinking text (the grammar allows JSON only).

Tools. A checkpoint whose chat template takes ``tools`` (GLM-4.6V's does) calls them in
its own syntax (``<tool_call>name<arg_key>…</arg_key><arg_value>…</arg_value></tool_call>``,
:mod:`modelserver.tools.formats` ``glm45``), enforced by a grammar over the offered
functions' schemas while decoding; tool results go back through the template as ``tool``
turns. A checkpoint whose template has no tools refuses requests with tools (400).

Decoding runs in the shared batched loop (:mod:`modelserver.decoding`): one batched
prefill with each row's images, then KV-cache decode steps streaming text per row.
Requests that arrive meanwhile join the running batch between two steps (continuous
batching): each is prefilled alone with its own images, and its M-RoPE offset travels
with its position (:mod:`vision.mrope`), so it decodes exactly as it would alone.

GPU fast path: on CUDA the rows decode in a static KV cache of ``VISION_MAX_BATCH_SIZE``
slots whose step is captured in CUDA graphs (:mod:`modelserver.cuda_graphs`; settings
``VISION_STATIC_KV``, ``VISION_CUDA_GRAPHS``, ``VISION_KV_CACHE_GIB``,
``VISION_KV_CACHE_MAX_LEN``), as the reasoner does, and the step is the text model's
written out and compiled (:mod:`modelserver.fused_step`, ``VISION_DECODE_STEP``); the CPU
keeps the dynamic cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from flashsight_common.schemas import ChatMessage, ImagePart, TextPart
from modelserver.backend import BatchSink, DiscardSink, GenerationRequest, SamplingParams
from modelserver.control_text import defuser_for
from modelserver.images import decode_data_url_image
from modelserver.tools import ToolFormat, detect_format, prompt_style, with_tools
from modelserver.torch_runtime import (
    TorchRuntimeError,
    check_memory,
    estimate_memory,
    resolve_device,
    resolve_dtype,
)
from PIL import Image

from vision.config import VisionSettings
from vision.glm_processor import load_processor
from vision.glm_rows import PreparedRow, SplittingSink, batch_image_inputs, joining_row
from vision.model_loading import ModelLoadError, check_model_source, load_config
from vision.mrope import MropeModel
from vision.thinking import prompt_opens_thinking

if TYPE_CHECKING:
    from modelserver.decoding import JoiningRow

log = logging.getLogger(__name__)

SETTING_NAME = "VISION_MODEL"
ROLE_NAMES: dict[str, str] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}


# Explicit classes by ``config.model_type``, for configs the auto mapping does not know.
MODEL_CLASSES: dict[str, str] = {
    "glm4v": "Glm4vForConditionalGeneration",
    "glm46v": "Glm46VForConditionalGeneration",
}


class GlmBackend:
    """GLM-4.6V-Flash (and other image-text-to-text checkpoints) served through transformers."""

    def __init__(self, settings: VisionSettings) -> None:
        self.settings = settings
        self.model_id = settings.served_model_name or default_model_id(settings.model)
        self.model: Any = None
        self.processor: Any = None
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self._decoder_model: Any = None
        self.max_context: int | None = None
        self.static_kv: Any = None
        """The GPU fast path (:mod:`modelserver.cuda_graphs`); None: the dynamic-cache path."""
        self._control_tokens: frozenset[str] = frozenset()
        self._defuse: Callable[[str], str] = str  # the tokenizer's ControlTokenDefuser once loaded
        self.structured: Any = None
        self.tool_format: ToolFormat | None = None
        """Set at load when the chat template takes tools; None: requests with tools are a 400."""

    # -- start-up -----------------------------------------------------------------------

    def load(self) -> None:
        started = time.perf_counter()
        source = check_model_source(self.settings.model, setting_name=SETTING_NAME)
        config = load_config(source, setting_name=SETTING_NAME)
        model_class = pick_model_class(config)
        try:
            self.device = resolve_device(self.settings.device, setting_name="VISION_DEVICE")
            self.dtype = resolve_dtype(self.settings.dtype, self.device)
        except TorchRuntimeError as exc:
            raise ModelLoadError(str(exc)) from exc
        log.info(
            "glm: %s → %s (%s) on %s as %s",
            source,
            model_class.__name__,
            config.model_type,
            self.device,
            self.dtype,
        )
        try:
            check_memory(
                estimate_memory(
                    lambda: model_class._from_config(config, dtype=self.dtype), self.dtype, self.device
                )
            )
        except TorchRuntimeError as exc:
            raise ModelLoadError(f"{SETTING_NAME}={source!r}: {exc}") from exc
        self.processor = load_processor(source)
        apply_pixel_budget(
            self.processor.image_processor, self.settings.image_min_pixels, self.settings.image_max_pixels
        )
        log.info(
            "glm: processor %s (image processor %s)",
            type(self.processor).__name__,
            type(self.processor.image_processor).__name__,
        )
        try:
            model = model_class.from_pretrained(source, dtype=self.dtype, device_map=str(self.device))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{SETTING_NAME}={source!r}: loading the weights failed: {exc}") from exc
        except torch.OutOfMemoryError as exc:
            raise ModelLoadError(
                f"{SETTING_NAME}={source!r}: out of memory while loading the weights: {exc}"
            ) from exc
        self._control_tokens = control_tokens(self.processor.tokenizer)
        self._defuse = defuser_for(self.processor.tokenizer)
        self.model = model.eval()
        from modelserver.structured import for_model

        self.structured = for_model(self.model, self.processor.tokenizer)
        template = getattr(self.processor, "chat_template", None) or self.processor.tokenizer.chat_template
        fmt = detect_format(template)
        self.tool_format = fmt if prompt_style(fmt, template) == "native" else None
        log.info("glm: tool calls %s", f"in {fmt.name} syntax" if self.tool_format else "not supported")
        self._decoder_model = (
            # GLM-4V's 3-D positions need the wrapper; other image-text-to-text models take
            # the decode loop's plain positions as they are.
            MropeModel(self.model) if config.model_type in MODEL_CLASSES else self.model
        )
        self.max_context = context_length(config)
        from modelserver.cuda_graphs import prepare_static_kv

        self.static_kv = prepare_static_kv(self._decoder_model, self.settings, context=self.max_context)
        log.info("glm: loaded %s in %.1f s", self.model_id, time.perf_counter() - started)

    def warmup(self) -> None:
        image = Image.new("RGB", (56, 56), (128, 128, 128))
        request = GenerationRequest(
            request_id="warmup",
            messages=[
                ChatMessage.model_validate(
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": _png_data_url(image)}},
                            {"type": "text", "text": "Describe the image."},
                        ],
                    }
                )
            ],
            sampling=SamplingParams(max_tokens=2, temperature=0.0),
        )
        try:
            self.generate([request], DiscardSink())
        except Exception:
            if self.static_kv is None:
                raise
            # The fast path must never cost the service: decode as before (dynamic cache).
            log.exception("glm: the static KV cache failed its warm-up decode: back to the dynamic cache")
            self.static_kv = None
            self.generate([request], DiscardSink())

    def check_request(self, request: GenerationRequest) -> None:
        """Refuse before queueing a ``response_format`` or tools that cannot be enforced (400 naming why)."""
        self.structured.check(request.response_format)
        self._constraint(request)

    def _constraint(self, request: GenerationRequest) -> Any:
        """The row's grammar: its tool calls' (:mod:`modelserver.tools`), else its response_format's."""
        if request.tools is not None and self.tool_format is not None:
            return self.structured.tag_constraint(self.tool_format.structural_tag(request.tools))
        return self.structured.constraint(request.response_format)

    # -- generation -----------------------------------------------------------------------

    def generate(self, batch: Sequence[GenerationRequest], sink: BatchSink) -> None:
        from modelserver.decoding import decode_batch

        splitting = SplittingSink(sink, drop=self._control_tokens)
        rows = self._prepare_rows(batch, sink, splitting, first=0)
        if not rows:
            return
        admit = getattr(sink, "admit", None)
        seen = len(batch)

        def join(running: int) -> list[JoiningRow]:
            # Requests queued meanwhile join this batch between two decode steps, each
            # prefilled alone with its own images.
            nonlocal seen
            requests = admit(running) if admit is not None else []
            joined = self._prepare_rows(requests, sink, splitting, first=seen)
            seen += len(requests)
            return [joining_row(row, device=self.device, dtype=self.dtype) for row in joined]

        decode_batch(
            self._decoder_model,
            self.processor.tokenizer,
            [row.input_ids for row in rows],
            [row.params for row in rows],
            splitting,
            extra_inputs=batch_image_inputs(rows, device=self.device, dtype=self.dtype),
            # Kept so <think>/box tags survive even where the tokenizer marks them special;
            # SplittingSink interprets them and drops the other control tokens.
            skip_special_tokens=False,
            max_context=self.max_context,
            constraints=[row.constraint for row in rows],
            join=join if admit is not None else None,
            static_kv=self.static_kv,
        )

    def _prepare_rows(
        self, requests: Sequence[GenerationRequest], sink: BatchSink, splitting: SplittingSink, *, first: int
    ) -> list[PreparedRow]:
        """Model inputs of ``requests`` (sink positions from ``first``); a bad one fails alone."""
        rows = []
        for position, request in enumerate(requests, start=first):
            try:
                row = self._prepare(position, request)
            except Exception as exc:  # one unreadable image fails its own request only
                sink.fail(position, exc)
                continue
            rows.append(row)
            splitting.add(row)
        return rows

    def _prepare(self, position: int, request: GenerationRequest) -> PreparedRow:
        conversation, images = to_template_messages(request.messages, defuse=self._defuse)
        conversation, template_kwargs = with_tools(
            conversation, request.messages, request.tools, style="native"
        )
        # A grammar-constrained answer is JSON only: an open <think> would route it all to
        # reasoning_content, so the template closes thinking for it.
        thinking = (request.enable_thinking or self.settings.enable_thinking) and not request.response_format
        prompt = self.processor.apply_chat_template(
            conversation,
            tokenize=False,
            add_generation_prompt=True,
            enable_thinking=thinking,
            **template_kwargs,
        )
        encoded = self.processor(text=[prompt], images=images or None, return_tensors="pt")
        if images and "pixel_values" not in encoded:
            raise ModelLoadError(f"the processor of {self.model_id} returned no pixel_values for an image")
        return PreparedRow(
            position=position,
            input_ids=encoded["input_ids"][0].tolist(),
            pixel_values=encoded.get("pixel_values") if images else None,
            image_grid_thw=encoded.get("image_grid_thw") if images else None,
            starts_in_reasoning=prompt_opens_thinking(prompt),
            params=request.sampling,
            constraint=self._constraint(request),
        )


def to_template_messages(
    messages: Sequence[ChatMessage], *, defuse: Callable[[str], str] = str
) -> tuple[list[dict[str, Any]], list[Image.Image]]:
    """Chat messages → the chat template's format, and their images decoded in prompt order.

    Text goes through ``defuse`` (the tokenizer's :class:`~modelserver.control_text.ControlTokenDefuser`):
    a caller's text never tokenises as ``<|user|>``, ``<|begin_of_image|>`` or any other control token.
    """
    conversation: list[dict[str, Any]] = []
    images: list[Image.Image] = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        if isinstance(message.content, str):
            parts.append({"type": "text", "text": defuse(message.content)})
        for part in message.content if isinstance(message.content, list) else ():
            if isinstance(part, ImagePart):
                images.append(decode_data_url_image(part.image_url.url))
                parts.append({"type": "image"})
            elif isinstance(part, TextPart):
                parts.append({"type": "text", "text": defuse(part.text)})
        turn: dict[str, Any] = {"role": ROLE_NAMES[message.role], "content": parts}
        if message.reasoning_content:
            turn["reasoning_content"] = defuse(message.reasoning_content)
        conversation.append(turn)
    return conversation, images


def control_tokens(tokenizer: Any) -> frozenset[str]:
    """The tokenizer's special tokens (never answer text), as strings to drop from the output."""
    special = {token.content for token in tokenizer.added_tokens_decoder.values() if token.special}
    return frozenset(special | set(tokenizer.all_special_tokens))


def context_length(config: Any) -> int | None:
    """Tokens the text model takes (prompt plus answer), from its config; None if it does not say."""
    text = getattr(config, "text_config", None) or config
    length = getattr(text, "max_position_embeddings", None)
    return int(length) if isinstance(length, int) and length > 0 else None


def pick_model_class(config: Any) -> Any:
    """The image-text-to-text class for ``config``: the auto mapping, else :data:`MODEL_CLASSES`."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING

    try:
        return MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING[type(config)]
    except KeyError:
        pass
    import transformers

    try:
        return getattr(transformers, MODEL_CLASSES[config.model_type])
    except KeyError:
        raise ModelLoadError(
            f"{config.model_type!r} is not an image-text-to-text model transformers knows; the glm backend "
            f"serves AutoModelForImageTextToText models and {', '.join(sorted(MODEL_CLASSES))}"
        ) from None


def apply_pixel_budget(image_processor: Any, min_pixels: int, max_pixels: int) -> None:
    """Bound the pixels per image after resizing (GLM / Qwen-VL style processors).

    Their resize counts an image as ``temporal_patch_size`` frames, so the size limits
    are scaled by it to make the settings mean pixels per image.
    """
    size = getattr(image_processor, "size", None)
    frames = getattr(image_processor, "temporal_patch_size", None)
    if size is None or frames is None or getattr(size, "longest_edge", None) is None:
        log.warning(
            "glm: %s has no pixel-budget resize; VISION_IMAGE_*_PIXELS ignored",
            type(image_processor).__name__,
        )
        return
    image_processor.size = {"shortest_edge": min_pixels * frames, "longest_edge": max_pixels * frames}


def default_model_id(model: str | None) -> str:
    """The id reported when no served name is set: a folder's name, or the HF id as given."""
    if not model:
        return "glm"
    path = Path(model).expanduser()
    return path.name if path.exists() else model


def _png_data_url(image: Image.Image) -> str:
    import base64
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
