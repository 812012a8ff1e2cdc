"""The host side of `make compose-test`: the packages it needs, a Docker engine, and base
images. Where no image registry is reachable (this kind of machine), the two base images are
local stand-ins built from Debian's packages and cached by name, so only the first run pays
for them. Standard library only: it runs before any virtualenv exists."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Logs, the generated env file, a temporary root file system (git and docker ignore .run/).
WORK = REPO / ".run" / "compose-test"
OFFICIAL_PYTHON = "python:3.11-slim"
OFFICIAL_POSTGRES = "postgres:16-alpine"
STANDIN_PYTHON = "zoho-standin/python:3.11-bookworm"
STANDIN_POSTGRES = "zoho-standin/postgres:15-bookworm"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def say(message: str) -> None:
    print(f"compose-test: {message}", flush=True)


def run(*argv: str, check: bool = True, quiet: bool = False, timeout: float = 1800,
        **kwargs: object) -> subprocess.CompletedProcess[str]:
    if not quiet:
        say("$ " + " ".join(argv))
    done = subprocess.run(argv, text=True, timeout=timeout, check=False,  # type: ignore[call-overload]
                          capture_output=quiet, **kwargs)
    if check and done.returncode != 0:
        detail = (done.stderr or "").strip()[-2000:] if quiet else ""
        raise RuntimeError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} failed "
                           f"({done.returncode}) {detail}")
    return done


def compose_command() -> list[str] | None:
    """`docker compose` (v2) where it answers, else docker-compose (v1, Debian's 1.29)."""
    if shutil.which("docker") and run("docker", "compose", "version", check=False,
                                      quiet=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def install_missing() -> None:
    """One `apt-get update`, then whatever is missing, in one install."""
    wanted = {"dockerd": "docker.io", "debootstrap": "debootstrap"}
    missing = [package for command, package in wanted.items() if not shutil.which(command)]
    if compose_command() is None:
        missing.append("docker-compose")
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"needs {' '.join(missing)} (install them, or run as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    say(f"installing {' '.join(missing)} (apt-get update, then install)")
    run("apt-get", "update", "-qq", env=env, quiet=True)
    run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, env=env,
        quiet=True)


@dataclass
class Engine:
    """A running dockerd; `started` when this run started it (and so stops it)."""

    process: subprocess.Popen[bytes] | None = None

    @property
    def started(self) -> bool:
        return self.process is not None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        say("stopping the dockerd this run started")
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


class NoEngine(RuntimeError):
    """dockerd cannot run on this machine at all."""


def engine_answers() -> bool:
    return run("docker", "info", check=False, quiet=True, timeout=30).returncode == 0


def ensure_engine() -> Engine:
    if engine_answers():
        return Engine()
    if not shutil.which("dockerd"):
        raise NoEngine("no dockerd on this machine")
    WORK.mkdir(parents=True, exist_ok=True)
    log_path = WORK / "dockerd.log"
    say(f"starting dockerd (log: {log_path})")
    with log_path.open("wb") as log:
        process = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    engine = Engine(process)
    deadline = time.monotonic() + 60
    while not engine_answers():
        if process.poll() is not None or time.monotonic() > deadline:
            engine.stop()
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise NoEngine("dockerd did not start: " + " | ".join(tail))
        time.sleep(0.5)
    return engine


def image_present(name: str) -> bool:
    return run("docker", "image", "inspect", name, check=False, quiet=True).returncode == 0


def pulled(name: str) -> bool:
    if image_present(name):
        return True
    done = run("docker", "pull", "-q", name, check=False, quiet=True, timeout=300)
    if done.returncode != 0:
        say(f"cannot pull {name}: {(done.stderr or '').strip().splitlines()[-1:]}")
    return done.returncode == 0


def build_python_standin() -> None:
    """Debian bookworm's Python 3.11 as a base image: debootstrap, the machine's CA bundle
    (so pip in the build reaches PyPI through what this machine trusts), docker import."""
    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORK, prefix="rootfs-") as root:
        run("debootstrap", "--variant=minbase",
            "--include=python3,python3-venv,python3-pip,ca-certificates",
            "bookworm", root, "http://deb.debian.org/debian", stdout=subprocess.DEVNULL)
        rootfs = Path(root)
        shutil.copyfile(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        # The official images' Python is not Debian's managed one: pip installs as root.
        (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
        (rootfs / "usr/local/bin/python").symlink_to("/usr/bin/python3")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            f"ENV PIP_CERT={HOST_CA_BUNDLE}",
            'CMD ["python3"]',
        ]
        argv = ["docker", "import", *[f"--change={c}" for c in changes], "-", STANDIN_PYTHON]
        say("$ tar -C ROOTFS -c . | " + " ".join(argv))
        imported = subprocess.run(argv, stdin=tar.stdout, check=False, stdout=subprocess.DEVNULL)
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise RuntimeError("docker import of the Python stand-in failed")


def build_postgres_standin() -> None:
    run("docker", "build", "--network", "host", "-q", "--build-arg",
        f"BASE_IMAGE={STANDIN_PYTHON}", "-f", str(REPO / "deploy/standin/postgres.Dockerfile"),
        "-t", STANDIN_POSTGRES, str(REPO / "deploy/standin"), stdout=subprocess.DEVNULL)


def base_images() -> dict[str, str]:
    """PYTHON_IMAGE and POSTGRES_IMAGE for compose: the official ones where they can be
    pulled, else the stand-ins (built once; a later run finds them by name)."""
    chosen = {"PYTHON_IMAGE": OFFICIAL_PYTHON, "POSTGRES_IMAGE": OFFICIAL_POSTGRES}
    if not pulled(OFFICIAL_PYTHON):
        if not image_present(STANDIN_PYTHON):
            say(f"building {STANDIN_PYTHON} from Debian's packages (once)")
            build_python_standin()
        chosen["PYTHON_IMAGE"] = STANDIN_PYTHON
    if not pulled(OFFICIAL_POSTGRES):
        if not image_present(STANDIN_POSTGRES):
            if not image_present(STANDIN_PYTHON):
                build_python_standin()
            say(f"building {STANDIN_POSTGRES} from Debian's packages (once)")
            build_postgres_standin()
        chosen["POSTGRES_IMAGE"] = STANDIN_POSTGRES
    say(f"base images: {chosen}")
    return chosen


if __name__ == "__main__":  # the base images alone: python3 scripts/compose_host.py
    install_missing()
    engine = ensure_engine()
    try:
        print(base_images())
    finally:
        engine.stop()
    sys.exit(0)
