"""Fixtures of the integration suite: the stack (compose's or a local one), stubs on it,
and the demo user connected once through the first broker replica."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from sandbox.control.client import SandboxControl
from sandbox.demo.tenant import DEMO_REFRESH_TOKEN, DEMO_SCOPES
from tests.integration.stack import Stack, local_stack, stack_from_environment
from tests.plugins.broker_fixtures import test_database_kind
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.notifier.v1 import notifier_pb2_grpc


def project_command(name: str) -> str:
    """A console script of this project: on PATH in the container, beside python locally."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    from_compose = stack_from_environment(os.environ)
    if from_compose is not None:
        yield from_compose
        return
    if test_database_kind() != "postgres":
        pytest.skip(
            "the local integration stack runs on PostgreSQL, like compose's: it runs in "
            "make test's PostgreSQL pass (TEST_DATABASE=postgres)"
        )
    with local_stack() as started:
        yield started


@pytest.fixture(scope="session")
def demo_connection(stack: Stack) -> broker_pb2.Connection:
    """The sandbox reset to its demo tenant, and the demo user connected through broker A."""
    reset = httpx.post(f"{stack.sandbox_origin}/_sandbox/reset", json={}, timeout=10)
    reset.raise_for_status()
    with grpc.insecure_channel(stack.broker_targets[0]) as channel:
        connection: broker_pb2.Connection = broker_pb2_grpc.TokenBrokerServiceStub(
            channel
        ).CreateConnection(
            broker_pb2.CreateConnectionRequest(
                user_id="demo",
                accounts_server=stack.sandbox_origin,
                api_domain=stack.sandbox_origin,
                refresh_token=DEMO_REFRESH_TOKEN,
                scopes=list(DEMO_SCOPES),
            ),
            timeout=15,
        )
    return connection


@pytest.fixture
async def brokers(stack: Stack) -> AsyncIterator[list[broker_pb2_grpc.TokenBrokerServiceStub]]:
    """One stub per broker replica, in INTEGRATION_BROKER_TARGETS order (A, B)."""
    channels = [grpc.aio.insecure_channel(target) for target in stack.broker_targets]
    try:
        yield [broker_pb2_grpc.TokenBrokerServiceStub(channel) for channel in channels]
    finally:
        for channel in channels:
            await channel.close()


@pytest.fixture
async def notifier(stack: Stack) -> AsyncIterator[notifier_pb2_grpc.NotifierServiceStub]:
    async with grpc.aio.insecure_channel(stack.notifier_target) as channel:
        yield notifier_pb2_grpc.NotifierServiceStub(channel)


@pytest.fixture
async def control(stack: Stack) -> AsyncIterator[SandboxControl]:
    """The sandbox's control API, without a reset: the stack is shared by the session."""
    async with SandboxControl(stack.sandbox_origin) as client:
        yield client
