"""The callback flags of the process: `--trickle` (the demo's steady changes) and
`--deliver-to` (where callbacks may go)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from sandbox.app import run_sandbox
from sandbox.control.client import SandboxControl
from tests.plugins.processes import REPO_ROOT
from tests.plugins.receiver_fixtures import Receiver
from tests.plugins.sandbox_fixtures import start_sandbox_process


@pytest.mark.slow
async def test_trickle_delivers_a_steady_stream_to_subscribers(receiver: Receiver):
    process = start_sandbox_process("--trickle", "40")
    try:
        async with SandboxControl(process.origin) as sb:
            channels = [
                {
                    "channel_id": str(9100001 + i),
                    "events": [f"{m}.all"],
                    "notify_url": receiver.url("/crm"),
                }
                for i, m in enumerate(["Leads", "Contacts", "Accounts", "Deals", "Tasks"])
            ]
            await sb.seed_crm_channels(items=channels, replace=True)
            await sb.seed_desk_webhooks(
                items=[
                    {
                        "url": receiver.url("/desk"),
                        "subscriptions": {
                            "Ticket_Add": None,
                            "Ticket_Update": None,
                            "Ticket_Delete": None,
                        },
                    }
                ]
            )
            await receiver.wait_for(5, "/crm", timeout=10)
            await receiver.wait_for(5, "/desk", timeout=10)
    finally:
        assert process.terminate() == 0
    crm = receiver.requests("/crm")[0].json()
    assert crm["operation"] in ("insert", "update", "delete") and crm["ids"]
    [event] = receiver.requests("/desk")[0].json()
    assert event["eventType"].startswith("Ticket_") and event["orgId"] == "3981311"


@pytest.mark.slow
async def test_deliver_to_allows_only_what_it_names(receiver: Receiver):
    async with run_sandbox("127.0.0.1", 0, deliver_to="10.0.0.0/8,receiver.internal") as origin:
        async with SandboxControl(origin) as sb:
            channel = {
                "channel_id": "9200001",
                "events": ["Leads.all"],
                "notify_url": receiver.url(),
            }
            await sb.seed_crm_channels(items=[channel], replace=True)
            [blocked] = await sb.change_records("crm", "Leads", "insert", ["1"])
    assert blocked.status == "blocked"
    await asyncio.sleep(0.1)
    assert receiver.requests() == []


@pytest.mark.slow
@pytest.mark.parametrize(("flag", "value"), [("--deliver-to", "not a host!"), ("--trickle", "-1")])
def test_bad_callback_flags_exit_2(flag: str, value: str):
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "--listen", "127.0.0.1:0", flag, value],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=20,
    )
    assert result.returncode == 2
    assert flag in result.stderr
