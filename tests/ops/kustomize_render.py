"""`kustomize build`, for the few fields deploy/kubernetes/ uses, so the manifests can be
validated offline without kubectl or kustomize: `resources` (files and folders with their own
kustomization.yaml), `namespace` and `images`. Any other field is refused rather than
ignored, so an overlay cannot grow a patch that nothing here applies (and nothing checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

UNDERSTOOD = frozenset({"apiVersion", "kind", "resources", "namespace", "images"})
CLUSTER_SCOPED = frozenset({"Namespace"})


class UnsupportedKustomization(ValueError):
    pass


def render(folder: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(kustomization) - UNDERSTOOD
    if unknown:
        raise UnsupportedKustomization(
            f"{folder}/kustomization.yaml uses {sorted(unknown)}, which this renderer does not "
            "apply: extend tests/ops/kustomize_render.py or validate with kustomize"
        )
    documents: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        if path.is_dir():
            documents += render(path)
        else:
            documents += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    namespace = kustomization.get("namespace")
    if namespace:
        for document in documents:
            if document["kind"] not in CLUSTER_SCOPED:
                document["metadata"]["namespace"] = namespace
    for image in kustomization.get("images", []):
        for container in containers(documents):
            if container["image"].split(":")[0] == image["name"]:
                container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    return documents


def pod_spec(document: dict[str, Any]) -> dict[str, Any] | None:
    if document["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        spec: dict[str, Any] = document["spec"]["template"]["spec"]
        return spec
    return None


def containers(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for document in documents:
        spec = pod_spec(document)
        if spec is not None:
            found += spec.get("initContainers", []) + spec["containers"]
    return found
