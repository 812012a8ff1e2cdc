"""Who may call what on the notifier: `NOTIFIER_CALLER_POLICY`, applied under mutual TLS
(`NOTIFIER_TLS_CLIENT_CA` set) to every call of NotifierService, with servicekit's
machinery (`servicekit/caller_policy.py`, shared with the broker's policy).

Besides RPC names a policy may grant `AllUsers`: to read every user's events at once
(`WatchNotifications` with an empty `user_id`; the consumers' "every user" forms ask
`may_read_all_users()` too). `*` as the methods means every RPC, never `AllUsers`,
which is always named; `*` as the identity means any certificate the client CA signed.

The default suits the compose stack's callers: any certificate of the client CA may
call every RPC for the user it names (that CA is the boundary, as without a policy),
and only `operator` and `sync` (a sync service streaming every user's events) may read
every user's events at once."""

from __future__ import annotations

from collections.abc import Iterable

from servicekit import caller_policy
from servicekit.caller_policy import CallerPolicy
from servicekit.errors import PermissionDenied

ENV_VAR = "NOTIFIER_CALLER_POLICY"
ALL_USERS = "AllUsers"
DEFAULT_POLICY = f"*=*;operator=*,{ALL_USERS};sync={ALL_USERS}"


def parse_policy(spec: str, methods: Iterable[str]) -> CallerPolicy:
    return CallerPolicy.parse(
        spec or DEFAULT_POLICY, methods, env_var=ENV_VAR, extra_grants=(ALL_USERS,),
        any_caller=True,
    )


def may_read_all_users() -> bool:
    """Whether the caller of the call being handled may read every user's events (an
    empty user_id). Always true without mutual TLS (no identity, no policy)."""
    return caller_policy.granted(ALL_USERS)


def require_all_users(method: str) -> None:
    """PermissionDenied unless the caller may read every user's events: for a watch or a
    consumer over every user (an empty user_id)."""
    if not may_read_all_users():
        raise PermissionDenied(
            "every user's events (an empty user_id) need the AllUsers grant "
            "(NOTIFIER_CALLER_POLICY): name the user_id",
            metadata={"method": method, "grant": ALL_USERS},
        )
