"""Loading the processor (chat template + image processor + tokenizer) of a vision checkpoint.

``AutoProcessor`` is tried first, so any image-text-to-text checkpoint brings its own
processor. GLM-4.6V's stock ``Glm46VProcessor`` also insists on a video processor, and
that one needs torchvision, which has no CPU build matching our torch: ``AutoProcessor``
then raises, or on some versions silently returns the bare tokenizer (the first image
request would then die with ``KeyError: 'pixel_values'``). In that case we compose
:class:`ImageOnlyProcessor` — the stock processor's image logic without the video part —
from the checkpoint's image processor, tokenizer and chat template. Either way the result
is checked: a processor without an image processor is a start-up error, not a bad answer.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers.models.glm46v.processing_glm46v import Glm46VProcessor
from transformers.processing_utils import ProcessorMixin

from vision.model_loading import ModelLoadError

log = logging.getLogger(__name__)

CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


class ImageOnlyProcessor(Glm46VProcessor):
    """GLM-4.6V's processor (image-token expansion, ``mm_token_type_ids``) with no video processor."""

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        # Glm46VProcessor.__init__ would require a video processor; set what it sets, minus video.
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
        self.video_start_id = tokenizer.convert_tokens_to_ids("<|begin_of_video|>")
        self.video_end_id = tokenizer.convert_tokens_to_ids("<|end_of_video|>")


def load_processor(model: str, **hub_kwargs: Any) -> Any:
    """The checkpoint's processor, or an :class:`ImageOnlyProcessor` composed from its parts."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(model, **hub_kwargs)
    except (ImportError, ValueError, OSError, KeyError, AttributeError) as exc:
        log.info("AutoProcessor could not load %s (%s); composing an image-only processor", model, exc)
        processor = None
    if processor is None or getattr(processor, "image_processor", None) is None:
        processor = compose_image_only_processor(model, **hub_kwargs)
    return ensure_image_processor(processor, model)


def compose_image_only_processor(model: str, **hub_kwargs: Any) -> ImageOnlyProcessor:
    """Build :class:`ImageOnlyProcessor` from the checkpoint's image processor and tokenizer."""
    from transformers import AutoImageProcessor, AutoTokenizer

    try:
        image_processor = AutoImageProcessor.from_pretrained(model, **hub_kwargs)
    except (OSError, ValueError, ImportError, KeyError) as exc:
        raise ModelLoadError(
            f"no image processor found for {model!r} (preprocessor_config.json missing or unreadable: "
            f"{exc}); "
            "a vision checkpoint must ship its image processor"
        ) from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, **hub_kwargs)
    except (OSError, ValueError, ImportError, KeyError) as exc:
        raise ModelLoadError(f"no tokenizer found for {model!r}: {exc}") from exc
    template = tokenizer.chat_template or _read_chat_template(model)
    if not template:
        raise ModelLoadError(
            f"{model!r} has no chat template (looked in the tokenizer and {', '.join(CHAT_TEMPLATE_FILES)})"
        )
    processor = ImageOnlyProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=template
    )
    if processor.image_token_id in (None, tokenizer.unk_token_id):
        raise ModelLoadError(
            f"{model!r}: its tokenizer has no {processor.image_token!r} token, so images cannot be placed "
            "in the prompt; the checkpoint's own processor is needed (AutoProcessor could not load it)"
        )
    return processor


def ensure_image_processor(processor: Any, model: str) -> Any:
    """Refuse a processor that cannot take images (e.g. a bare tokenizer from ``AutoProcessor``)."""
    if getattr(processor, "image_processor", None) is None or getattr(processor, "tokenizer", None) is None:
        raise ModelLoadError(
            f"the processor loaded for {model!r} is a {type(processor).__name__} without an image processor; "
            "image requests would fail with KeyError 'pixel_values'. The checkpoint needs a "
            "preprocessor_config.json (image processor) next to its tokenizer"
        )
    if not getattr(processor, "chat_template", None):
        raise ModelLoadError(f"the processor loaded for {model!r} has no chat template")
    return processor


def _read_chat_template(model: str) -> str | None:
    folder = Path(model)
    if not folder.is_dir():
        return None
    for name in CHAT_TEMPLATE_FILES:
        path = folder / name
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            if name.endswith(".json"):
                import json

                return json.loads(text).get("chat_template")
            return text
    return None
