"""Request bytes that are not the request message, answered INVALID_ARGUMENT naming the
field `request`: the deserializer hands on a marker instead of raising, since raising
there would reach the caller as UNKNOWN with Python's exception text."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from servicekit.error_status import refuse
from servicekit.errors import InvalidArgument


class _Malformed:
    __slots__ = ("message_type",)

    def __init__(self, message_type: str) -> None:
        self.message_type = message_type

    def error(self) -> InvalidArgument:
        return InvalidArgument(
            [("request", f"not a valid serialized {self.message_type} (malformed protobuf: "
                         "a truncated field, invalid UTF-8 in a string, ...)")]
        )


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    owner = getattr(deserializer, "__self__", None)
    message_type = getattr(getattr(owner, "DESCRIPTOR", None), "full_name", "request message")

    def decode(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except DecodeError:
            return _Malformed(message_type)

    return decode


async def refuse_malformed(ctx: grpc.aio.ServicerContext[Any, Any], request: Any,
                           method: str) -> None:
    """Ends the call if `request` came from bytes `tolerant` could not decode."""
    if isinstance(request, _Malformed):
        await refuse(ctx, request.error(), method)


async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A client stream's requests; a malformed one is the handler's INVALID_ARGUMENT."""
    async for request in requests:
        if isinstance(request, _Malformed):
            raise request.error()
        yield request
