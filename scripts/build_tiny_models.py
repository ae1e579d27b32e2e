#!/usr/bin/env python
"""Build tiny random-weight checkpoints of FlashSight's production model architectures.

Tests run the production backends (vision ``glm``, reasoner ``transformers``) on these
instead of the multi-gigabyte real weights; nothing is downloaded. Each checkpoint has
the real architecture class, a tokenizer holding GLM's real special tokens (at small ids:
a 151k-entry vocabulary would not fit in a tiny checkpoint) and a chat template equivalent
to the real one, so the production code path — chat template, image processor, image-token
expansion, M-RoPE, KV-cache decode, detokenisation — runs unchanged.

    glm46v-tiny/     Glm4vForConditionalGeneration (GLM-4.6V-Flash's config class), a
                     Glm46V image processor config (PIL backend: no torchvision needed),
                     tokenizer, chat_template.jinja
    glm4-chat-tiny/  Glm4ForCausalLM (zai-org/glm-4-9b-chat-hf's architecture), tokenizer,
                     chat template

Usage: ``python scripts/build_tiny_models.py [--out .cache/tiny-models] [--force]``.
Idempotent: a checkpoint whose ``tiny-build.json`` stamp matches BUILD_VERSION is kept.
"""

# ruff: noqa: E501  (the Jinja chat templates below keep their real line structure)
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("build_tiny_models")

# Bump when anything below changes what gets written: stale checkpoints are then rebuilt.
BUILD_VERSION = 8
STAMP_FILE = "tiny-build.json"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / ".cache" / "tiny-models"

# GLM-4 family special tokens, in the real vocabulary's order (151329 onwards in the real
# checkpoints; here they follow a small byte-level BPE). ``special`` tokens are dropped by
# ``skip_special_tokens`` decoding; the others (think / box / tool tags) are text the
# model really writes, as in the real tokenizers.
SPECIAL_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("[MASK]", True),
    ("[gMASK]", True),
    ("[sMASK]", True),
    ("<sop>", True),
    ("<eop>", True),
    ("<|system|>", True),
    ("<|user|>", True),
    ("<|assistant|>", True),
    ("<|observation|>", True),
    ("<|begin_of_image|>", True),
    ("<|end_of_image|>", True),
    ("<|begin_of_video|>", True),
    ("<|end_of_video|>", True),
    ("<|image|>", True),
    ("<|video|>", True),
    ("<think>", False),
    ("</think>", False),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<|begin_of_box|>", False),
    ("<|end_of_box|>", False),
    ("/nothink", False),
)
# GLM-4.5 / GLM-4.6V's tool-argument tags (not in GLM-4-9B chat's vocabulary): text the
# model writes inside ``<tool_call>``, added to the glm46v tokenizer only.
GLM45_TOOL_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<arg_key>", False),
    ("</arg_key>", False),
    ("<arg_value>", False),
    ("</arg_value>", False),
)
EOS_TOKENS = ("<|endoftext|>", "<|user|>", "<|observation|>")

# A few sentences in the languages FlashSight serves, so the BPE learns real merges.
TRAINING_TEXT = (
    "The invoice number is INV-2024-0042 and the total amount is 1,280.50 USD.",
    "This screenshot shows a login form with a red error message.",
    "The chart shows sales rising from January to June.",
    "A photo of a cat sitting on a wooden table next to a cup of coffee.",
    "发票号码是 INV-2024-0042，金额合计 1280.50 元。",
    "这张截图显示了一个登录页面和一条错误提示。",
    "为什么这个报表的数字不一致？应该怎么做？",
    "<think>Let me look at the image carefully.</think>The answer is 42.",
)

# GLM-4.6V's chat template, reduced to what FlashSight sends (system/user/assistant/tool
# turns with text and image parts, function tools); the structure, tags and the
# ``enable_thinking`` switch match the real template: thinking off appends ``/nothink`` to
# user turns and pre-fills an empty ``<think></think>`` block, so the model answers
# directly. Tools are listed in a system block and calls are written GLM-4.5 style,
# ``<tool_call>name<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>``; results
# follow ``<|observation|>`` in ``<tool_response>`` blocks.
GLM46V_CHAT_TEMPLATE = r"""[gMASK]<sop>
{%- if tools -%}
<|system|>
# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{% for tool in tools %}
{{ tool | tojson(ensure_ascii=False) }}
{% endfor %}
</tools>

For each function call, output the function name and arguments within the following XML format:
<tool_call>{function-name}
<arg_key>{arg-key-1}</arg_key>
<arg_value>{arg-value-1}</arg_value>
...
</tool_call>
{%- endif -%}
{%- macro visible_text(content) -%}
{%- if content is string -%}{{ content }}
{%- elif content is iterable and content is not mapping -%}
{%- for item in content -%}
{%- if item is mapping and item.type == 'text' -%}{{ item.text }}
{%- elif item is mapping and (item.type in ('image', 'image_url') or 'image' in item) -%}<|begin_of_image|><|image|><|end_of_image|>
{%- elif item is mapping and (item.type == 'video' or 'video' in item) -%}<|begin_of_video|><|video|><|end_of_video|>
{%- elif item is string -%}{{ item }}
{%- endif -%}
{%- endfor -%}
{%- elif content is none -%}
{%- else -%}{{ content }}
{%- endif -%}
{%- endmacro -%}
{%- for m in messages -%}
{%- if m.role == 'system' -%}<|system|>
{{ visible_text(m.content) }}
{%- elif m.role == 'user' -%}<|user|>
{{ visible_text(m.content) }}
{{- '/nothink' if (enable_thinking is defined and not enable_thinking and not visible_text(m.content).endswith('/nothink')) else '' -}}
{%- elif m.role == 'assistant' -%}<|assistant|>
{%- set reasoning = m.reasoning_content if m.reasoning_content is string else '' -%}
{{ '\n<think>' + reasoning.strip() + '</think>' }}
{%- if m.content -%}{{ '\n' + visible_text(m.content).strip() }}{%- endif -%}
{%- for tc in m.tool_calls or [] -%}
{%- set tc = tc.function if tc.function is defined else tc -%}
{{ '\n<tool_call>' + tc.name }}
{%- for k, v in tc.arguments.items() %}
<arg_key>{{ k }}</arg_key>
<arg_value>{{ v | tojson(ensure_ascii=False) if v is not string else v }}</arg_value>
{%- endfor %}
</tool_call>
{%- endfor -%}
{%- elif m.role == 'tool' -%}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}<|observation|>{%- endif -%}
{{ '\n<tool_response>\n' + visible_text(m.content) + '\n</tool_response>' }}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}<|assistant|>
{{- '\n<think></think>\n' if (enable_thinking is defined and not enable_thinking) else '\n' -}}
{%- endif -%}"""

# zai-org/glm-4-9b-chat(-hf)'s chat template with its function-tool branch (the real one
# also describes built-in python / browser / image tools, which FlashSight never sends).
# Tools ride on a message's ``tools`` key; a call is an assistant turn whose ``metadata`` is
# the function name and whose content is the JSON arguments; results are ``observation``
# turns. List content (text parts) is joined, as FlashSight's reasoner never sends images.
GLM4_CHAT_TEMPLATE = r"""[gMASK]<sop>{% for item in messages %}{% if item['tools'] is defined %}<|system|>
你是一个名为 ChatGLM 的人工智能助手。你是基于智谱AI训练的语言模型 GLM-4 模型开发的，你的任务是针对用户的问题和要求提供适当的答复和支持。

# 可用工具{% set tools = item['tools'] %}{% for tool in tools %}{% if tool['type'] == 'function' %}

## {{ tool['function']['name'] }}

{{ tool['function'] | tojson(indent=4) }}
在调用上述函数时，请使用 Json 格式表示调用的参数。{% endif %}{% endfor %}{% endif %}{% if item['content'] %}<|{{ item['role'] }}|>{{ item['metadata'] }}
{{ item['content'] if item['content'] is string else (item['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('')) }}{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"""


def build_tokenizer(chat_template: str, extra_tokens: tuple[tuple[str, bool], ...] = ()):  # -> PreTrainedTokenizerFast
    """A byte-level BPE over TRAINING_TEXT plus GLM's special tokens (and ``extra_tokens``), with ``chat_template``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AddedToken, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(TRAINING_TEXT, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_tokens(
        [AddedToken(text, special=special, normalized=False) for text, special in SPECIAL_TOKENS + extra_tokens]
    )
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [text for text, special in SPECIAL_TOKENS if special]},
        replace_extra_special_tokens=True,
    )
    tokenizer.chat_template = chat_template
    return tokenizer


def _token_ids(tokenizer, *tokens: str) -> list[int]:
    ids = tokenizer.convert_tokens_to_ids(list(tokens))
    assert tokenizer.unk_token_id not in ids or tokenizer.unk_token_id is None, ids
    return ids


def build_glm46v(target: Path) -> None:
    """GLM-4.6V-Flash's architecture (config class ``glm4v``, as the real checkpoint) at toy size."""
    import torch
    from transformers import GenerationConfig, Glm4vConfig, Glm4vForConditionalGeneration
    from transformers.models.glm46v.image_processing_pil_glm46v import Glm46VImageProcessorPil

    tokenizer = build_tokenizer(GLM46V_CHAT_TEMPLATE, GLM45_TOOL_TOKENS)
    ids = dict(
        zip(
            [t for t, _ in SPECIAL_TOKENS],
            _token_ids(tokenizer, *[t for t, _ in SPECIAL_TOKENS]),
            strict=True,
        )
    )
    eos = [ids[t] for t in EOS_TOKENS]
    head_dim, partial_rotary = 32, 0.5
    hidden = 64
    config = Glm4vConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": hidden // head_dim,
            "num_key_value_heads": 1,
            "max_position_embeddings": 4096,
            # Larger than the real 0.02 so the toy model's output depends visibly on positions
            # and images (tests can then tell a wrong M-RoPE offset or a lost image).
            "initializer_range": 0.2,
            # M-RoPE splits the rotary half-dims into (temporal, height, width) sections:
            # they must sum to head_dim × partial_rotary_factor / 2 (real model: [8, 12, 12]).
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "partial_rotary_factor": partial_rotary,
                "mrope_section": [2, 3, 3],
            },
            "pad_token_id": ids["<|endoftext|>"],
            "eos_token_id": eos,
        },
        vision_config={
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "image_size": 336,
            # Image features are scattered into the text embedding: widths must agree.
            "out_hidden_size": hidden,
        },
        image_token_id=ids["<|image|>"],
        video_token_id=ids["<|video|>"],
        image_start_token_id=ids["<|begin_of_image|>"],
        image_end_token_id=ids["<|end_of_image|>"],
        video_start_token_id=ids["<|begin_of_video|>"],
        video_end_token_id=ids["<|end_of_video|>"],
    )
    config.architectures = ["Glm4vForConditionalGeneration"]
    torch.manual_seed(0)
    model = Glm4vForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=eos, pad_token_id=ids["<|endoftext|>"], do_sample=False
    )
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    # The real checkpoint's pixel budget (the backend overrides it from settings); patch 14,
    # temporal patch 2 and merge 2 are the class defaults, as in the real checkpoint.
    image_processor = Glm46VImageProcessorPil(
        size={"shortest_edge": 112 * 112, "longest_edge": 28 * 28 * 15000}
    )
    image_processor.save_pretrained(target)
    (target / "chat_template.jinja").write_text(GLM46V_CHAT_TEMPLATE, encoding="utf-8")


def build_glm4_chat(target: Path) -> None:
    """zai-org/glm-4-9b-chat-hf's architecture (``Glm4ForCausalLM``, no remote code) at toy size."""
    import torch
    from transformers import GenerationConfig, Glm4Config, Glm4ForCausalLM

    tokenizer = build_tokenizer(GLM4_CHAT_TEMPLATE)
    eos = _token_ids(tokenizer, *EOS_TOKENS)
    pad = _token_ids(tokenizer, "<|endoftext|>")[0]
    config = Glm4Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=4096,
        initializer_range=0.2,  # as for glm46v-tiny: varied output, so stop strings and streaming show
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
        pad_token_id=pad,
        eos_token_id=eos,
        attention_bias=True,
    )
    config.architectures = ["Glm4ForCausalLM"]
    torch.manual_seed(0)
    model = Glm4ForCausalLM(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad, do_sample=False)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "glm46v-tiny": build_glm46v,
    "glm4-chat-tiny": build_glm4_chat,
}


def is_current(target: Path) -> bool:
    """True when ``target`` holds a complete checkpoint written by this BUILD_VERSION."""
    try:
        stamp = json.loads((target / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stamp.get("build_version") == BUILD_VERSION


def build_one(name: str, out: Path, *, force: bool = False) -> Path:
    """Build checkpoint ``name`` under ``out`` unless a current one is there; return its path."""
    target = out / name
    if not force and is_current(target):
        log.info("%s: current, kept (%s)", name, target)
        return target
    # Build beside the target and swap in, so a crash never leaves a half-written checkpoint
    # that a later run would take for current.
    staging = out / f".{name}.building"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    started = time.perf_counter()
    BUILDERS[name](staging)
    size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    stamp = {
        "build_version": BUILD_VERSION,
        "seconds": round(time.perf_counter() - started, 2),
        "bytes": size,
    }
    (staging / STAMP_FILE).write_text(json.dumps(stamp), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    log.info("%s: built in %.1f s, %d bytes (%s)", name, stamp["seconds"], size, target)
    return target


def build_all(out: Path = DEFAULT_OUT, *, force: bool = False) -> dict[str, Path]:
    """Build every tiny checkpoint under ``out``; return name → path."""
    return {name: build_one(name, out, force=force) for name in BUILDERS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="rebuild even when current")
    parser.add_argument("--only", choices=sorted(BUILDERS), action="append", help="build only these")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in args.only or BUILDERS:
        build_one(name, args.out, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
