"""One name per running process, for the rows it claims (the broker's refresh lease and
audit rows, the keeper's leases): readable in the database (host and pid) and unique
even when a restarted container reuses both."""

from __future__ import annotations

import os
import secrets
import socket


def replica_id() -> str:
    # At most 57 characters: the columns that hold it are 64 wide.
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
