"""`zoho-broker connect` and `zoho-broker connections ...` as an operator runs them, against
the running stack. httpx plays the browser: it opens the printed link at the sandbox, whose
consent page redirects to the command's local callback."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from urllib.parse import parse_qs, urlsplit

import grpc
import httpx
import pytest

from broker.operator.explanations import explain
from sandbox.control.client import SandboxControl
from sandbox.demo.tenant import DEMO_CLIENT_ID
from tests.integration.stack import Stack
from tests.operator_runner import zoho_broker
from tests.plugins.processes import REPO_ROOT
from tests.rpc_errors import seen
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2

SCOPES = ["ZohoCRM.notifications.READ", "Desk.webhooks.READ"]


class ConnectCommand:
    """`zoho-broker connect` running in the background; `.link` is the URL it printed."""

    def __init__(self, stack: Stack, user: str, *extra: str) -> None:
        scope_args = [arg for scope in SCOPES for arg in ("--scope", scope)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broker", "connect", "--user", user,
             "--broker", stack.broker_targets[0], "--accounts-server", stack.sandbox_origin,
             "--client-id", DEMO_CLIENT_ID, "--listen", "127.0.0.1:0", "--timeout", "30",
             *scope_args, *extra],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        lines: list[str] = []

        def read_link() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.append(line)
                if line.startswith("http"):
                    return

        reader = threading.Thread(target=read_link, daemon=True)
        reader.start()
        reader.join(30)
        if not lines or not lines[-1].startswith("http"):
            self.proc.kill()
            raise AssertionError(f"no link printed: {lines!r} {self.proc.stderr.read()!r}")
        self.link = lines[-1].strip()

    def finish(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out, err


def test_connect_runs_zoho_consent_and_refuses_a_forged_redirect(stack: Stack) -> None:
    user = f"cli-{uuid.uuid4().hex[:8]}"
    command = ConnectCommand(stack, user)
    link = urlsplit(command.link)
    query = {key: values[0] for key, values in parse_qs(link.query).items()}
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{stack.sandbox_origin}/oauth/v2/auth"
    assert query["access_type"] == "offline"
    assert query["prompt"] == "consent"
    assert query["response_type"] == "code"
    assert query["client_id"] == DEMO_CLIENT_ID
    assert query["scope"] == ",".join(SCOPES)
    assert len(query["state"]) >= 20
    callback = query["redirect_uri"]
    assert callback.startswith("http://127.0.0.1:")

    # A redirect that did not come from this consent: refused, nothing exchanged.
    forged = httpx.get(callback, params={
        "code": "1000.forged.code", "state": "not-the-state", "location": "us",
        "accounts-server": stack.sandbox_origin,
    }, timeout=10)
    assert forged.status_code == 400
    assert "does not match" in forged.text
    with grpc.insecure_channel(stack.broker_targets[1]) as channel:
        stub = broker_pb2_grpc.TokenBrokerServiceStub(channel)
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetConnection(broker_pb2.GetConnectionRequest(user_id=user), timeout=10)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

        # The browser: the sandbox approves as `user` and redirects to the callback.
        page = httpx.get(f"{command.link}&sandbox_user={user}", follow_redirects=True,
                         timeout=30)
        assert page.status_code == 200, page.text
        assert f"Zoho is connected for {user}" in page.text
        code, out, err = command.finish()
        assert code == 0, err
        assert f"connected {user}" in out
        # The connection is in the shared database: the other replica serves it.
        connection = stub.GetConnection(broker_pb2.GetConnectionRequest(user_id=user), timeout=10)
        token = stub.GetToken(broker_pb2.GetTokenRequest(
            user_id=user, app_type=common_pb2.APP_TYPE_CRM), timeout=10)
    assert connection.status == broker_pb2.CONNECTION_STATUS_ACTIVE
    assert connection.accounts_server == stack.sandbox_origin
    assert list(connection.scopes) == SCOPES
    assert token.access_token


def test_connect_reports_a_refused_consent(stack: Stack) -> None:
    command = ConnectCommand(stack, f"cli-{uuid.uuid4().hex[:8]}")
    page = httpx.get(f"{command.link}&sandbox_consent=deny", follow_redirects=True, timeout=30)
    assert page.status_code == 400
    code, _, err = command.finish()
    assert code == 1
    assert "Zoho did not grant access: access_denied" in err


async def test_connections_list_show_and_delete_with_revoke(
    stack: Stack, control: SandboxControl, capsys: pytest.CaptureFixture[str]
) -> None:
    user = f"ops-{uuid.uuid4().hex[:8]}"
    refresh_token = await control.add_refresh_token(user=user, scopes=SCOPES)
    async with grpc.aio.insecure_channel(stack.broker_targets[0]) as channel:
        await broker_pb2_grpc.TokenBrokerServiceStub(channel).CreateConnection(
            broker_pb2.CreateConnectionRequest(
                user_id=user, accounts_server=stack.sandbox_origin,
                api_domain=stack.sandbox_origin, refresh_token=refresh_token,
            ), timeout=15)
    broker_b = stack.broker_targets[1]

    listed = await zoho_broker(
        capsys, "connections", "list", "--broker", broker_b, "--page-size", "1"
    )
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(user))
    assert row.split()[1] == "ACTIVE"
    assert refresh_token not in listed.stdout

    shown = await zoho_broker(capsys, "connections", "show", user, "--broker", broker_b, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["userId"] == user

    deleted = await zoho_broker(capsys, "connections", "delete", user, "--broker", broker_b)
    assert deleted.returncode == 0, deleted.stderr
    assert "Zoho revoked its refresh token" in deleted.stdout
    assert (await control.mint_stats(refresh_token)).revoked is True

    gone = await zoho_broker(capsys, "connections", "show", user, "--broker", broker_b)
    assert gone.returncode == 1
    assert f"There is no connection for {user}" in gone.stderr
    unreachable = await zoho_broker(capsys, "connections", "list", "--broker", "127.0.0.1:1")
    assert unreachable.returncode == 1
    assert "Cannot reach the broker at 127.0.0.1:1" in unreachable.stderr


async def test_each_typed_error_is_said_in_words_that_say_what_to_do(
    stack: Stack, control: SandboxControl
) -> None:
    target = stack.broker_targets[0]
    narrow_user = f"narrow-{uuid.uuid4().hex[:8]}"
    narrow = await control.add_refresh_token(user=narrow_user, scopes=SCOPES[:1])
    async with grpc.aio.insecure_channel(target) as channel:
        stub = broker_pb2_grpc.TokenBrokerServiceStub(channel)
        await stub.CreateConnection(broker_pb2.CreateConnectionRequest(
            user_id=narrow_user, accounts_server=stack.sandbox_origin,
            api_domain=stack.sandbox_origin, refresh_token=narrow), timeout=15)

        async def said(call: object) -> tuple[str, str]:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call  # type: ignore[misc]
            return seen(caught.value).reason, explain(caught.value, broker=target)

        def create(**fields: str) -> object:
            request = {"user_id": "someone", "accounts_server": stack.sandbox_origin,
                       "redirect_uri": "http://127.0.0.1:9/callback", **fields}
            return stub.CreateConnection(broker_pb2.CreateConnectionRequest(**request),
                                         timeout=15)

        cases = [
            (stub.GetToken(broker_pb2.GetTokenRequest(
                user_id="nobody", app_type=common_pb2.APP_TYPE_CRM), timeout=10),
             "NOT_CONNECTED", "nobody has no Zoho connection. Connect them with "
                              "`zoho-broker connect --user nobody`"),
            (create(authorization_code="1000.used.code"),
             "REAUTH_REQUIRED", "The user must consent again"),
            (stub.GetToken(broker_pb2.GetTokenRequest(
                user_id=narrow_user, app_type=common_pb2.APP_TYPE_DESK), timeout=10),
             "MISSING_SCOPE", "The grant lacks Desk.webhooks.READ. Connect again asking for it"),
            (create(authorization_code="1000.any.code",
                    accounts_server="https://accounts.evil.example"),
             "ORIGIN_NOT_ALLOWED", "https://accounts.evil.example is not a Zoho data centre "
                                   "and not in the broker's ZOHO_EXTRA_ORIGINS"),
            (create(user_id="", authorization_code="1000.any.code"),
             "INVALID_ARGUMENT", "The broker refused the request: user_id"),
            (stub.GetConnection(broker_pb2.GetConnectionRequest(user_id="nobody"), timeout=10),
             "NOT_FOUND", "There is no connection for nobody"),
        ]
        for call, reason, words in cases:
            got_reason, sentence = await said(call)
            assert got_reason == reason
            assert words in sentence, (reason, sentence)

        await control.fault("token", "throttle")
        got_reason, sentence = await said(create(authorization_code="1000.any.code"))
        assert got_reason == "ZOHO_THROTTLED"
        assert "Zoho is limiting new tokens for this grant: try again in" in sentence
