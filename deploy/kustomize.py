"""Render a kustomization (the subset deploy/kubernetes/ uses) without a kustomize binary.

``make test`` must render every overlay offline, on machines with no kustomize or kubectl.
The overlays stay real kustomize input (``kubectl apply -k`` is how users apply them); this
module implements only the fields they use and refuses any other, so it cannot silently
render something different: ``resources`` (files and directories), ``namespace``,
``images`` (newName / newTag) and ``patches`` given by ``path`` (strategic merge patches:
maps merge, ``null`` deletes a key, lists of containers / env / volumes / ports merge by
their key, other lists are replaced). tests/deploy/test_kubernetes.py compares the result
with ``kubectl kustomize`` wherever kubectl is installed.

    python -m deploy.kustomize deploy/kubernetes/overlays/cpu   # prints the YAML stream
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from deploy import strict_yaml

KNOWN_FIELDS = frozenset({"apiVersion", "kind", "resources", "namespace", "images", "patches"})
# Kinds with no namespace (the rest get the kustomization's namespace)
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "PersistentVolume",
        "ClusterRole",
        "ClusterRoleBinding",
        "StorageClass",
        "CustomResourceDefinition",
        "PriorityClass",
    }
)
# List fields a strategic merge patch merges element by element, and the key it matches on
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}


class KustomizeError(ValueError):
    """A kustomization uses something this renderer does not implement, or is inconsistent."""


def render(directory: Path) -> list[dict[str, Any]]:
    """Every object the kustomization in ``directory`` produces, in resource order."""
    spec = strict_yaml.load(directory / "kustomization.yaml")
    unknown = sorted(set(spec) - KNOWN_FIELDS)
    if unknown:
        raise KustomizeError(
            f"{directory}: unsupported kustomization fields {unknown} (supported: {sorted(KNOWN_FIELDS)})"
        )
    objects: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        objects += render(path) if path.is_dir() else strict_yaml.load_all(path)
    for patch_entry in spec.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise KustomizeError(f"{directory}: only `patches: - path: FILE` is supported, not {patch_entry}")
        patch = strict_yaml.load(directory / patch_entry["path"])
        target = _find(objects, patch["kind"], patch["metadata"]["name"], directory)
        objects[objects.index(target)] = merge(target, patch)
    for image in spec.get("images", []):
        _set_image(objects, image)
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = spec["namespace"]
    return objects


def merge(base: Any, patch: Any, *, field: str | None = None) -> Any:
    """Strategic merge of ``patch`` into ``base`` (a new value; neither is changed)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = merge(merged[key], value, field=key)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        merged_list = copy.deepcopy(base)
        for item in patch:
            match = next((i for i, old in enumerate(merged_list) if old.get(key) == item.get(key)), None)
            if match is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[match] = merge(merged_list[match], item)
        return merged_list
    return copy.deepcopy(patch)


def _find(objects: list[dict[str, Any]], kind: str, name: str, where: Path) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise KustomizeError(f"{where}: a patch targets {kind}/{name}, which no resource defines")


def _set_image(objects: list[dict[str, Any]], image: dict[str, str]) -> None:
    extra = sorted(set(image) - {"name", "newName", "newTag"})
    if extra:
        raise KustomizeError(f"images: unsupported fields {extra}")
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m deploy.kustomize DIRECTORY", file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump_all(render(Path(argv[0])), sort_keys=False, allow_unicode=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
