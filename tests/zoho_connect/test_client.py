"""zoho_connect against the real notifier: watch resumes across a restart of the
notifier, consume acks, nacks and drains, errors arrive typed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2

import zoho_connect
from notifier.app import NotifierApp
from servicekit import error_status, errors
from servicekit.config import ListenAddress
from servicekit.runner import running
from tests.consumers.helpers import Puller, append, create, get, until
from tests.plugins.notifier_fixtures import NotifierHandle, notifier_config
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc
from zoho_connect import errors as client_errors


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def notifier_on(port: int, sandbox, broker, database_url: str  # type: ignore[no-untyped-def]
                      ) -> AsyncIterator[NotifierHandle]:
    config = notifier_config(sandbox.origin, broker.address, database_url,
                             listen=ListenAddress("127.0.0.1", port))
    app = NotifierApp(config)
    async with running(app, grace=0, migrate=False) as address:
        async with grpc.aio.insecure_channel(address) as channel:
            yield NotifierHandle(app, address, channel,
                                 notifier_pb2_grpc.NotifierServiceStub(channel), None)  # type: ignore[arg-type]


async def test_watch_resumes_after_its_last_event_across_a_restart(
    sandbox, broker, notifier_database_url
) -> None:
    port = _free_port()
    seen: list[notifier_pb2.NotificationEvent] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:

        async def read() -> None:
            backoff = zoho_connect.Backoff(initial_seconds=0.05, max_seconds=0.2)
            async for event in zoho_connect.watch(channel, from_earliest=True, backoff=backoff):
                seen.append(event)

        reader: asyncio.Task[None] | None = None
        async with notifier_on(port, sandbox, broker, notifier_database_url) as first:
            await append(first, "1", "2")
            reader = asyncio.ensure_future(read())
            await until(lambda: _count_is(seen, 2))
        async with notifier_on(port, sandbox, broker, notifier_database_url) as second:
            await append(second, "3")
            await until(lambda: _count_is(seen, 3), limit=15)
            await append(second, "4")
            await until(lambda: _count_is(seen, 4))
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    assert [e.record_id for e in seen] == ["1", "2", "3", "4"]
    assert len({e.cursor for e in seen}) == 4


async def _count_is(items: list[object], count: int) -> bool:
    return len(items) >= count


async def test_watch_stops_on_errors_retrying_cannot_fix(notifier) -> None:
    with pytest.raises(client_errors.InvalidArgumentError) as bad:
        async for _ in zoho_connect.watch(notifier.channel, after_cursor="garbage"):
            pass
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT and not bad.value.retryable
    await append(notifier, "1", "2")
    await notifier.app.live.log.prune(_tomorrow())
    with pytest.raises(client_errors.CursorExpiredError):
        async for _ in zoho_connect.watch(notifier.channel, after_cursor="0000000000000001"):
            pass


def _tomorrow():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(days=1)


async def test_consume_acks_handled_events_and_retries_failed_ones(notifier) -> None:
    await create(notifier.stub)
    await append(notifier, *[str(i) for i in range(10)])
    handled: list[str] = []
    failures: list[str] = []
    stop = asyncio.Event()

    async def handler(event: notifier_pb2.NotificationEvent) -> None:
        if event.record_id == "3" and not failures:
            failures.append(event.cursor)
            raise RuntimeError("the first try of record 3 fails")
        handled.append(event.record_id)
        if len(handled) == 10:
            stop.set()

    async with asyncio.timeout(20):
        await zoho_connect.consume(notifier.channel, "sync", handler, stop=stop,
                                   max_outstanding=4, concurrency=2)
    assert sorted(handled) == sorted(str(i) for i in range(10))
    assert len(failures) == 1
    await until(lambda: _backlog(notifier, 0))


async def _backlog(notifier, count: int) -> bool:  # type: ignore[no-untyped-def]
    return (await get(notifier.stub)).backlog == count


async def test_consume_drains_running_handlers_on_stop(notifier) -> None:
    await create(notifier.stub)
    await append(notifier, *[str(i) for i in range(6)])
    started: list[str] = []
    finished: list[str] = []
    stop = asyncio.Event()

    async def slow(event: notifier_pb2.NotificationEvent) -> None:
        started.append(event.record_id)
        if len(started) == 2:
            stop.set()  # shutdown while two handlers run
        await asyncio.sleep(0.5)
        finished.append(event.record_id)

    async with asyncio.timeout(20):
        await zoho_connect.consume(notifier.channel, "sync", slow, stop=stop,
                                   max_outstanding=6, concurrency=2)
    assert len(started) == 2 and sorted(finished) == sorted(started)
    await until(lambda: _backlog(notifier, 4))
    # What was sent but not started was nacked: a new Pull gets it at once.
    pull = Puller(notifier.stub, "sync")
    got = await pull.wait_for(4, limit=5)
    assert sorted(e.record_id for e, _ in got) == sorted(
        set(str(i) for i in range(6)) - set(finished))
    await pull.stop()


async def test_consume_of_an_unknown_consumer_is_not_found(notifier) -> None:
    async def never(event: notifier_pb2.NotificationEvent) -> None:
        raise AssertionError("no event expected")

    with pytest.raises(client_errors.NotFoundError) as missing:
        await zoho_connect.consume(notifier.channel, "nobody", never)
    assert missing.value.metadata["consumer_id"] == "nobody"


def _readme_reasons() -> set[str]:
    """The reasons of the README's error table (SPEC's and the services' own)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = re.findall(r"^\| `([A-Z][A-Z_]+)` \| ([A-Z_]+) \|", readme, re.MULTILINE)
    return {reason for reason, code in rows if code in grpc.StatusCode.__members__}


def test_every_reason_has_a_class_of_its_own() -> None:
    served = {
        cls.reason for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.ServiceError)
    }
    documented = _readme_reasons()
    assert {"CREDITS_EXHAUSTED", "TOO_MANY_SUBSCRIPTIONS", "NOT_CONNECTED"} <= documented
    # Declared in zoho_connect.errors by name (importable, typed), not made up at run time.
    declared = {
        cls.reason: name for name, cls in vars(client_errors).items()
        if isinstance(cls, type) and issubclass(cls, client_errors.NotifierError)
        and cls.reason and cls.__module__ == client_errors.__name__
    }
    assert sorted((served | documented) - set(declared)) == []
    assert set(error_status.CODES) <= set(declared)
    for reason, name in declared.items():
        assert name in client_errors.__all__
        assert client_errors.BY_REASON[reason].__name__ == name


async def test_refusals_of_the_real_notifier_arrive_as_their_classes(
    notifier, connect_subscriber
) -> None:
    await connect_subscriber()
    notifier.app.subscriptions._max_per_user = 1
    subscribe = notifier_pb2.CreateSubscriptionRequest(
        user_id="demo", app_type=common_pb2.APP_TYPE_CRM, events=["Leads.all"])
    await notifier.stub.CreateSubscription(subscribe, timeout=20)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await notifier.stub.CreateSubscription(subscribe, timeout=20)
    capped = zoho_connect.error_from(refused.value)
    assert type(capped) is client_errors.TooManySubscriptionsError
    assert capped.code == grpc.StatusCode.RESOURCE_EXHAUSTED and not capped.retryable
    assert capped.metadata["limit"] == "1"

    await create(notifier.stub, "taken")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create(notifier.stub, "taken")
    assert type(zoho_connect.error_from(refused.value)) is client_errors.AlreadyExistsError
    consumers = notifier.app.live.consumers
    consumers._config = dataclasses.replace(consumers._config, max_consumers=1)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create(notifier.stub, "another")
    full = zoho_connect.error_from(refused.value)
    assert type(full) is client_errors.TooManyConsumersError and full.metadata["limit"] == "1"


def test_a_reason_this_client_does_not_know_keeps_its_name() -> None:
    status = error_status.build_status(
        grpc.StatusCode.FAILED_PRECONDITION, "from a newer server",
        [error_details_pb2.ErrorInfo(reason="SOMETHING_NEW", domain=error_status.ERROR_DOMAIN)])
    failed = grpc.aio.AioRpcError(
        status.code, grpc.aio.Metadata(), grpc.aio.Metadata(*status.trailing_metadata),
        details=status.details)
    unknown = zoho_connect.error_from(failed)
    assert type(unknown) is client_errors.NotifierError
    assert unknown.reason == "SOMETHING_NEW" and not unknown.retryable


def test_backoff_is_jittered_capped_and_honours_retry_info() -> None:
    backoff = zoho_connect.Backoff(initial_seconds=0.1, max_seconds=1.0)
    delays = [backoff.delay(attempt) for attempt in range(10) for _ in range(20)]
    assert all(0 <= d <= 1.0 for d in delays) and len(set(delays)) > 10
    assert backoff.delay(0, retry_after=2.0) == 2.0
