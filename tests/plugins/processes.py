"""Starting the project's real processes for tests: `python -m PKG` on a free port,
its address read from the `listening on HOST:PORT` line that SPEC promises."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 30.0


class ServiceProcess:
    def __init__(self, module: str, env: dict[str, str], *args: str) -> None:
        self.module = module
        self.stderr_lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )
        first: list[str] = []
        reader = threading.Thread(
            target=lambda: first.append(self.proc.stdout.readline() if self.proc.stdout else ""),
            daemon=True,
        )
        reader.start()
        reader.join(START_TIMEOUT_SECONDS)
        # Keep reading both pipes so a chatty process never blocks on a full one.
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        threading.Thread(target=lambda: self.proc.stdout and self.proc.stdout.read(),
                         daemon=True).start()
        line = first[0].strip() if first else ""
        if not line.startswith("listening on "):
            self.kill()
            raise RuntimeError(
                f"{module} did not start (first line {line!r}); stderr:\n"
                + "".join(self.stderr_lines[-40:])
            )
        self.address = line.removeprefix("listening on ")

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def terminate(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(timeout=10)
