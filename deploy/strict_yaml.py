"""YAML loading that refuses a mapping with the same key twice.

PyYAML keeps the last value of a duplicated key without a word, while Compose v2 and
Kubernetes' own decoders reject the file: `docker-compose.yml` once set each service's
``*_LOG_FORMAT`` twice and every test still passed. Everything under ``deploy/`` and the
compose tests load YAML through :func:`load` / :func:`load_all` instead.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names the same key twice."""


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises :class:`DuplicateKeyError` on a repeated key."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Hashable, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:  # `<<: *anchor` merges; its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise DuplicateKeyError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first at line {seen[key].start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def loads(text: str) -> Any:
    """One YAML document, duplicate keys refused."""
    return yaml.load(text, Loader=StrictLoader)


def load(path: Path) -> Any:
    """The single YAML document in ``path``, duplicate keys refused."""
    return loads(path.read_text())


def load_all(path: Path) -> list[Any]:
    """Every non-empty document in ``path`` (a ``---`` separated stream), duplicate keys refused."""
    return [doc for doc in yaml.load_all(path.read_text(), Loader=StrictLoader) if doc is not None]
