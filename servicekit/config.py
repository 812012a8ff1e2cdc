"""Reading configuration from the environment, once, with errors that name the variable."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from servicekit.identifiers import is_decimal
from servicekit.origins import normalize_origin


class ConfigError(Exception):
    """A bad configuration value; the message starts with the variable's name."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int
    # The environment variable it came from: a start-up error names it.
    variable: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def bind(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else str(self)


class Env:
    """Typed accessors over one environment mapping (os.environ by default)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def text(self, name: str, default: str = "") -> str:
        return self.environ.get(name, default).strip() or default

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        raw = self.environ.get(name, "").strip()
        if not raw:
            return default
        try:
            # ASCII only: int() also reads Arabic-Indic and other Unicode digits.
            if not is_decimal(raw.removeprefix("-")):
                raise ValueError
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"expected a whole number, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise ConfigError(name, f"must be between {minimum} and {maximum}, got {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        raw = self.environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(name, f"expected a number, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise ConfigError(name, f"must be between {minimum} and {maximum}, got {value}")
        return value

    def items(self, name: str) -> list[str]:
        return [item.strip() for item in self.environ.get(name, "").split(",") if item.strip()]

    def listen(self, name: str, default: str) -> ListenAddress:
        return parse_listen(self.text(name, default), name)


def parse_listen(raw: str, variable: str) -> ListenAddress:
    host, sep, port_text = raw.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not is_decimal(port_text) or int(port_text) > 65535:
        raise ConfigError(variable, f"expected HOST:PORT (port 0 picks a free one), got {raw!r}")
    return ListenAddress(host, int(port_text), variable)


def listen_failed(listen: ListenAddress, error: OSError | None = None) -> ConfigError:
    """A start-up error for an address the process could not listen on (exit 2, one line:
    the variable and the address), like every other start-up fault."""
    if error is None:
        why = "cannot bind it"
    elif error.errno == errno.EADDRINUSE:
        why = "the address is already in use"
    else:
        why = error.strerror or type(error).__name__
    return ConfigError(listen.variable or "listen address", f"cannot listen on {listen}: {why}")


def check_bindable(listen: ListenAddress) -> None:
    """Raises `listen_failed` if `listen` cannot be bound now. For servers (gRPC's) whose own
    bind failure is only a RuntimeError and a C-level log line without the reason."""
    if listen.port == 0:
        return
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((listen.host, listen.port))
    except OSError as failed:
        raise listen_failed(listen, failed) from None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class SharedSettings:
    """The settings every service reads under the same names (LOG_*, ZOHO_EXTRA_ORIGINS)."""

    log_format: str = "text"
    log_level: str = "INFO"
    # Origins trusted besides Zoho's data centres (the sandbox), normalised on use.
    extra_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Env) -> SharedSettings:
        extra = tuple(env.items("ZOHO_EXTRA_ORIGINS"))
        for origin in extra:
            if normalize_origin(origin) is None:
                raise ConfigError(
                    "ZOHO_EXTRA_ORIGINS", f"{origin!r} is not an origin (scheme://host[:port])"
                )
        log_format = env.text("LOG_FORMAT", cls.log_format).lower()
        if log_format not in ("text", "json"):
            raise ConfigError("LOG_FORMAT", f"expected text or json, got {log_format!r}")
        log_level = env.text("LOG_LEVEL", cls.log_level).upper()
        if log_level not in LOG_LEVELS:
            raise ConfigError(
                "LOG_LEVEL", f"expected one of {', '.join(LOG_LEVELS)}, got {log_level!r}"
            )
        return cls(log_format=log_format, log_level=log_level, extra_origins=extra)
