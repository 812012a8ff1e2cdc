"""Who may call what on the broker: `BROKER_CALLER_POLICY`, applied under mutual TLS
(`BROKER_TLS_CLIENT_CA` set) to every call of TokenBrokerService, e.g.

    notifier=GetToken,RefreshToken;operator=*

The machinery (parsing, certificate identities, the interceptor) is servicekit's
(`servicekit/caller_policy.py`), shared with the notifier's NOTIFIER_CALLER_POLICY.
Without a client CA there is no caller identity and no policy (the network is the
boundary); setting a policy then is an error (broker/config.py)."""

from __future__ import annotations

from collections.abc import Iterable

from servicekit.caller_policy import CallerPolicy

ENV_VAR = "BROKER_CALLER_POLICY"
DEFAULT_POLICY = "notifier=GetToken,RefreshToken;operator=*"


def parse_policy(spec: str, methods: Iterable[str]) -> CallerPolicy:
    return CallerPolicy.parse(spec or DEFAULT_POLICY, methods, env_var=ENV_VAR)
