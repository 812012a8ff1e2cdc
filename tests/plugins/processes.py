"""Starting the project's real processes for tests and benchmarks: `python -m PKG` on
a free port, its address read from the `listening on HOST:PORT` line the contract
promises (docs/contract.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 30.0
# Enough for any test's assertions on logs, bounded for long benchmark runs.
_MAX_STDERR_LINES = 50_000


class ServiceProcess:
    """`python -m MODULE ARGS` with `env` (or `argv`, e.g. a profiler in front of it).

    Both pipes are drained for the process's whole life, so a chatty process never
    blocks on a full pipe; stderr is kept for assertions.
    """

    def __init__(
        self,
        module: str,
        env: dict[str, str],
        *args: str,
        argv: Sequence[str] | None = None,
        first_line_prefix: str = "listening on ",
    ) -> None:
        """`first_line_prefix`: what the first line starts with (`zoho-notifier ingress`
        prints `ingress listening on HOST:PORT`)."""
        self.module = module
        # Under a wrapper (py-spy), signals go to the service itself, so the wrapper
        # can write its output once the service exits.
        self.wrapped = argv is not None
        self.stderr_lines: list[str] = []
        env = {**_notifier_defaults(env), **env} if module == "notifier" else env
        self.proc = subprocess.Popen(
            list(argv) if argv is not None else [sys.executable, "-m", module, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT), **env},
        )
        first: list[str] = []
        reader = threading.Thread(target=self._read_first_line, args=(first,), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_SECONDS)
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        threading.Thread(target=lambda: self.proc.stdout and self.proc.stdout.read(),
                         daemon=True).start()
        line = first[0].strip() if first else ""
        if not line.startswith(first_line_prefix):
            self.kill()
            raise RuntimeError(
                f"{module} did not start (first line {line!r}); stderr:\n" + self.stderr_tail
            )
        self.address = line.removeprefix(first_line_prefix)

    def _read_first_line(self, first: list[str]) -> None:
        while self.proc.stdout is not None:
            line = self.proc.stdout.readline()
            # A profiler in front prints its own lines first.
            if not line or (line.strip() and not line.startswith("py-spy>")):
                first.append(line)
                return

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line)
            if len(self.stderr_lines) > _MAX_STDERR_LINES:
                del self.stderr_lines[: _MAX_STDERR_LINES // 10]

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def origin(self) -> str:
        return "http://" + self.address

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    @property
    def stderr_tail(self) -> str:
        return "".join(self.stderr_lines[-60:])

    def status_kib(self, field: str) -> int:
        """A memory figure of /proc/PID/status (VmRSS, VmHWM, ...), in KiB; 0 if gone."""
        try:
            lines = Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
        except OSError:
            return 0
        for line in lines:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        return 0

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then the exit code; SIGKILL if it does not exit in `timeout`."""
        if self.proc.poll() is None:
            targets = child_pids(self.proc.pid) if self.wrapped else []
            for pid in targets or [self.proc.pid]:
                os.kill(pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    stop = terminate

    def kill(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(timeout=10)


def child_pids(pid: int) -> list[int]:
    try:
        names = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(n) for n in names]


def _notifier_defaults(env: dict[str, str]) -> dict[str, str]:
    """A notifier started for a test binds its ingress on a free port and keeps its
    database in a directory of its own, unless the test names them (the defaults, a fixed
    port and a file in the working directory, are for production)."""
    defaults = {"NOTIFIER_INGRESS_LISTEN": "127.0.0.1:0"}
    if "NOTIFIER_DATABASE_URL" not in env:
        folder = tempfile.mkdtemp(prefix="zoho-notifier-test-")
        defaults["NOTIFIER_DATABASE_URL"] = f"sqlite:///{folder}/notifier.db"
    return defaults
