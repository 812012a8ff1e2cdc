"""`make compose-test`: docker-compose.yml built and run for real, and the integration suite
run in its `tests` container over the compose network.

Installs what is missing (docker.io, docker-compose, debootstrap), starts dockerd if none
runs (and stops it at the end), takes the official base images or builds local stand-ins
(scripts/compose_host.py), builds both targets, `up`s the stack and waits for every service
to be healthy, runs the suite and prints its result line, then what only containers show:
the runtime image runs as non-root, the stack survives `restart broker`, a broker replica
killed under steady calls loses none of them; and the image sizes. Logs are collected on
failure (under .run/compose-test/); containers, volumes and networks always go.
Exit 0 passed, 1 failed; with --skip-without-engine, 0 and a loud SKIPPED where dockerd
cannot run on this machine at all."""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compose_host import (
    REPO,
    WORK,
    NoEngine,
    base_images,
    compose_command,
    ensure_engine,
    install_missing,
    run,
    say,
)

PROJECT = "zoho-connect-ci"
LONG_RUNNING = ("postgres", "sandbox", "broker", "notifier")
# The tests service's own command, with the reasons of any skip shown.
SUITE = ["pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/integration"]
AFTER_RESTART = [*SUITE[:-1], "tests/integration/test_stack.py"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Stack:
    def __init__(self, compose: list[str], images: dict[str, str]) -> None:
        WORK.mkdir(parents=True, exist_ok=True)
        self.env_file = WORK / "compose.env"
        key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        notifier_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        variables = {
            "COMPOSE_PROJECT_NAME": PROJECT,
            "POSTGRES_PASSWORD": secrets.token_urlsafe(18),
            "BROKER_ENCRYPTION_KEY": f"ci1:{key}",
            "NOTIFIER_ENCRYPTION_KEY": f"ci1:{notifier_key}",
            "ZOHO_CLIENT_ID": "1000.SANDBOX",  # the sandbox's public demo client
            "ZOHO_CLIENT_SECRET": "sandbox-secret",
            # Published on loopback only, on free ports: the machine may run `make run` too.
            "SANDBOX_HOST_PORT": free_port(),
            "NOTIFIER_HOST_PORT": free_port(),
            "NOTIFIER_INGRESS_HOST_PORT": free_port(),
            **images,
        }
        # It holds the run's generated secrets: readable by its owner alone from the start.
        self.env_file.unlink(missing_ok=True)
        with open(os.open(self.env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write("".join(f"{k}={v}\n" for k, v in variables.items()))
        self.base = [*compose, "--project-directory", str(REPO), "-f",
                     str(REPO / "docker-compose.yml"), "--env-file", str(self.env_file),
                     "-p", PROJECT]

    def compose(self, *args: str, check: bool = True, quiet: bool = False,
                timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return run(*self.base, *args, check=check, quiet=quiet, timeout=timeout, cwd=REPO)

    def containers(self, service: str) -> list[str]:
        ids = self.compose("ps", "-q", service, quiet=True).stdout.split()
        return sorted(ids)

    def state(self, container: str) -> tuple[str, str, int]:
        fmt = "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}" \
              " {{.State.ExitCode}}"
        status, health, code = run("docker", "inspect", "-f", fmt, container,
                                   quiet=True).stdout.split()
        return status, health, int(code)

    def wait_healthy(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = {s: [self.state(c) for c in self.containers(s)] for s in LONG_RUNNING}
            migrate = [self.state(c) for c in self.containers("migrate")]
            if any(st[0] == "exited" and st[2] != 0 for st in migrate):
                raise RuntimeError(f"migrate failed: {migrate}")
            if all(states[s] and all(h == "healthy" for _, h, _ in states[s])
                   for s in LONG_RUNNING) and len(states["broker"]) == 2:
                say("healthy: " + ", ".join(f"{s} x{len(states[s])}" for s in LONG_RUNNING)
                    + f"; migrate exited {[st[2] for st in migrate]}")
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"not healthy within {timeout:.0f} s: {states}")
            time.sleep(2)

    def tests(self, *argv: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return self.compose("--profile", "test", "run", "--rm", "-T", "tests", *argv,
                            check=False, quiet=True, timeout=timeout)

    def logs(self) -> Path:
        path = WORK / "compose-logs.txt"
        done = self.compose("logs", "--no-color", "--timestamps", check=False, quiet=True)
        path.write_text(done.stdout + done.stderr)
        return path

    def down(self) -> None:
        self.compose("--profile", "test", "down", "--volumes", "--remove-orphans",
                     "--timeout", "10", check=False)


def result_line(output: str) -> str:
    lines = [ln for ln in output.splitlines()
             if re.search(r"\d+ (passed|failed|error)", ln)]
    return lines[-1].strip("= ") if lines else "(no result line)"


def run_suite(stack: Stack, argv: list[str], label: str) -> None:
    done = stack.tests(*argv)
    for skipped in re.findall(r"^SKIPPED .*$", done.stdout, re.MULTILINE):
        say(f"{label}: {skipped}")
    say(f"{label}: {result_line(done.stdout)}")
    if done.returncode != 0:
        print(done.stdout[-6000:], done.stderr[-2000:], sep="\n", flush=True)
        raise RuntimeError(f"{label} failed (exit {done.returncode})")


def check_non_root(stack: Stack) -> None:
    image_user = run("docker", "run", "--rm", "--network", "none", "--entrypoint", "id",
                     "zoho-connect:runtime", "-u", quiet=True).stdout.strip()
    running = run("docker", "exec", stack.containers("broker")[0], "id", "-u",
                  quiet=True).stdout.strip()
    if "0" in (image_user, running):
        raise RuntimeError(f"runs as root: image uid {image_user}, broker uid {running}")
    say(f"non-root: the runtime image runs as uid {image_user}, a running broker as {running}")


def check_replica_kill(stack: Stack) -> None:
    """Steady calls in the tests container; one broker replica SIGKILLed a few seconds in.
    Every call must succeed; then the replica comes back."""
    victim = stack.containers("broker")[0]
    argv = [*stack.base, "--profile", "test", "run", "--rm", "-T", "tests",
            "python", "-m", "tests.integration.replica_load", "--seconds", "16"]
    load = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert load.stdout is not None
    output: list[str] = []
    for line in load.stdout:
        output.append(line.rstrip())
        if line.startswith("ready"):
            break
    time.sleep(4)
    calls_before = max([int(m) for m in re.findall(r"calls=(\d+)", "\n".join(output))] or [0])
    run("docker", "kill", victim, quiet=True)
    say(f"killed broker replica {victim[:12]} under load")
    output += [line.rstrip() for line in load.stdout]
    code = load.wait(120)
    summary = json.loads(output[-1]) if output and output[-1].startswith("{") else {}
    calls = summary.get("calls", 0)
    say(f"replica kill: {summary or output[-5:]}")
    if code != 0 or not summary or summary["failures"] or calls <= calls_before:
        raise RuntimeError(f"calls failed or stopped while a replica was killed: {output[-8:]}")
    if stack.state(victim)[0] == "running":
        raise RuntimeError("the killed replica was still running")
    run("docker", "start", victim, quiet=True)
    stack.wait_healthy()


def print_sizes() -> None:
    for image in ("zoho-connect:runtime", "zoho-connect:test"):
        size = int(run("docker", "image", "inspect", "-f", "{{.Size}}", image,
                       quiet=True).stdout.strip())
        say(f"image size: {image} {size / 1e6:.0f} MB")


def build(images: dict[str, str]) -> None:
    for target in ("runtime", "test"):
        run("docker", "build", "--network", "host", "-q", "--build-arg",
            f"PYTHON_IMAGE={images['PYTHON_IMAGE']}", "--target", target,
            "-t", f"zoho-connect:{target}", str(REPO), stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-without-engine", action="store_true",
                        help="exit 0 with SKIPPED where dockerd cannot run at all")
    args = parser.parse_args()
    started = time.monotonic()
    install_missing()
    try:
        engine = ensure_engine()
    except NoEngine as why:
        if args.skip_without_engine:
            say(f"SKIPPED: no Docker engine can run on this machine ({why})")
            return 0
        raise
    stack: Stack | None = None
    failed = True
    try:
        images = base_images()
        build(images)
        compose = compose_command()
        assert compose is not None
        stack = Stack(compose, images)
        stack.down()  # what an interrupted earlier run left
        stack.compose("up", "-d", "--no-build")
        stack.wait_healthy()
        run_suite(stack, SUITE, "integration suite in the tests container")
        check_non_root(stack)
        stack.compose("restart", "broker")
        stack.wait_healthy()
        run_suite(stack, AFTER_RESTART, "after `restart broker`")
        check_replica_kill(stack)
        run_suite(stack, AFTER_RESTART, "after the killed replica came back")
        print_sizes()
        failed = False
    finally:
        if stack is not None:
            if failed:
                say(f"FAILED; the stack's logs: {stack.logs()}")
            stack.down()
            stack.env_file.unlink(missing_ok=True)
        engine.stop()
        say(f"{'failed' if failed else 'passed'} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, subprocess.TimeoutExpired) as problem:
        say(f"FAILED: {problem}")
        sys.exit(1)
