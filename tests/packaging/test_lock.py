"""The lock files (requirements/*.txt, `make lock`) pin every package pyproject.toml names, at a
version its range admits, with hashes, and the image's lock and the test venv's agree."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.plugins.processes import REPO_ROOT

LOCKS = REPO_ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\$", re.MULTILINE)


def pins(lock: str) -> dict[str, str]:
    return {canonicalize_name(name): version
            for name, version in PIN.findall((LOCKS / lock).read_text())}


def declared(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    names = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(text) for text in names]


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    runtime, dev = pins("runtime.txt"), pins("dev.txt")
    for lock, requirements in ((runtime, declared(None)), (dev, declared(None) + declared("dev"))):
        for requirement in requirements:
            name = canonicalize_name(requirement.name)
            assert name in lock, f"{name} is not in the lock: run make lock"
            assert requirement.specifier.contains(lock[name], prereleases=True), (
                f"{name}=={lock[name]} is outside pyproject's {requirement.specifier}")


def test_the_image_and_the_test_venv_hold_the_same_versions() -> None:
    runtime, build, dev = pins("runtime.txt"), pins("build.txt"), pins("dev.txt")
    for shared in (runtime, build):
        differ = {name: (version, dev.get(name)) for name, version in shared.items()
                  if dev.get(name) != version}
        assert not differ, f"dev.txt disagrees with the image's lock: {differ}"


def test_every_pin_carries_a_hash() -> None:
    for lock in ("runtime.txt", "build.txt", "dev.txt"):
        entries = re.split(r"\n(?=[A-Za-z0-9])", (LOCKS / lock).read_text())
        for entry in entries:
            if PIN.match(entry):
                assert "--hash=sha256:" in entry, f"{lock}: {entry.splitlines()[0]} has no hash"


def test_grpcio_and_its_code_generator_move_together() -> None:
    dev = pins("dev.txt")
    assert dev["grpcio"] == dev["grpcio-tools"]
    stamped = (REPO_ROOT / "zoho/notifier/v1/notifier_pb2_grpc.py").read_text()
    assert f"GRPC_GENERATED_VERSION = '{dev['grpcio-tools']}'" in stamped
