"""The README's grpcurl commands work as written: each is run against the stack (its
addresses put in place of the README's), and the error it shows is the error we print."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import grpc

from tests.integration.conftest import project_command
from tests.integration.stack import Stack
from zoho.broker.v1 import broker_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

README = Path(__file__).resolve().parents[2] / "README.md"
BROKER, NOTIFIER = "127.0.0.1:50051", "127.0.0.1:50052"


def readme_grpcurl_commands() -> list[str]:
    """Every `grpcurl ...` in the README's shell blocks, continuation lines joined; a
    pipeline into grpcurl (`{ echo ...; } |` then `grpcurl -d @ ...`) is one command, kept
    with its newlines for bash."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    commands: list[str] = []
    pending: list[str] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if pending or line.startswith("{ "):
            pending.append(line)
            if line.startswith("grpcurl "):
                commands.append("\n".join(pending))
                pending = []
        elif line.startswith("grpcurl "):
            commands.append(line)
    assert not pending, f"a pipeline that feeds no grpcurl: {pending}"
    return commands


def readme_error_example() -> list[str]:
    """The lines of the README's example error output (the block after the commands)."""
    block = re.search(r"```\n(ERROR:.*?)```", README.read_text(), flags=re.S)
    assert block, "the README lost its example error"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_every_readme_grpcurl_command_works_as_written(
    stack: Stack, demo_connection: broker_pb2.Connection
) -> None:
    commands = readme_grpcurl_commands()
    assert len(commands) >= 6, commands
    for command in commands:
        here = command.replace(BROKER, stack.broker_targets[0]).replace(
            NOTIFIER, stack.notifier_target)
        if "\n" in here:
            # The consumer's Pull fed by a pipeline: run as written, by bash.
            script = here.replace("grpcurl ", f"{project_command('grpcurl')} ")
            done = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                                  timeout=60, check=False)
            assert done.returncode == 0 and not done.stderr.strip(), f"{command}\n{done.stderr}"
            continue
        argv = shlex.split(here)
        argv[0] = project_command("grpcurl")
        if "WatchNotifications" in command:
            # A live watch stays open: it must still be streaming, without an error, later.
            watch = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
            try:
                assert watch.wait(timeout=3) is None, command
            except subprocess.TimeoutExpired:
                pass
            finally:
                watch.kill()
                _, err = watch.communicate(timeout=10)
            assert not err.strip(), f"{command}\n{err}"
            continue
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if '"nobody"' in command:
            assert done.returncode != 0, command
            shown = [line.strip() for line in done.stderr.splitlines() if line.strip()]
            assert shown == readme_error_example(), done.stderr
        else:
            assert done.returncode == 0, f"{command}\n{done.stderr}"
            assert done.stdout.strip(), command
    _clean_up(stack.notifier_target)


def _clean_up(target: str) -> None:
    """The walkthrough's CreateSubscription made a CRM channel and its CreateConsumer a
    consumer: the stack is shared by the integration tests, which count the demo's
    channels."""
    with grpc.insecure_channel(target) as channel:
        stub = notifier_pb2_grpc.NotifierServiceStub(channel)
        consumer = stub.GetConsumer(notifier_pb2.GetConsumerRequest(consumer_id="crm-sync"),
                                    timeout=10)
        assert consumer.consumer_id == "crm-sync"
        stub.DeleteConsumer(notifier_pb2.DeleteConsumerRequest(consumer_id="crm-sync"),
                            timeout=10)
        listed = stub.ListSubscriptions(
            notifier_pb2.ListSubscriptionsRequest(user_id="demo"), timeout=10)
        for sub in listed.subscriptions:
            stub.DeleteSubscription(notifier_pb2.DeleteSubscriptionRequest(
                user_id="demo", subscription_id=sub.subscription_id), timeout=10)
