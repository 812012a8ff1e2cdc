"""A raw HTTP/2 gRPC client (the `h2` package over a plain socket), for what grpc's own
clients refuse to do: send header bytes gRPC would reject (CR, LF, NUL, non-ASCII), or
open streams with a tiny flow-control window that is never reopened (a stalled reader).

Blocking; tests run it with asyncio.to_thread when the server is in-process.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings


@dataclass
class RawReply:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    messages: list[bytes] = field(default_factory=list)
    trailers: dict[bytes, bytes] = field(default_factory=dict)
    reset: int | None = None  # the RST_STREAM error code, if the server reset the stream
    ended: bool = False
    _buffer: bytes = b""

    @property
    def grpc_status(self) -> int | None:
        raw = self.trailers.get(b"grpc-status", self.headers.get(b"grpc-status"))
        return None if raw is None else int(raw)

    @property
    def status_details(self) -> bytes:
        """The serialized google.rpc.Status (base64 in grpc-status-details-bin)."""
        import base64

        # A call refused before any message is "trailers only": its status in the headers.
        key = b"grpc-status-details-bin"
        raw = self.trailers.get(key, self.headers.get(key, b""))
        return base64.b64decode(raw + b"=" * (-len(raw) % 4))

    def _data(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= 5:
            (length,) = struct.unpack(">I", self._buffer[1:5])
            if len(self._buffer) < 5 + length:
                return
            self.messages.append(self._buffer[5 : 5 + length])
            self._buffer = self._buffer[5 + length :]


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


class RawH2Client:
    """One HTTP/2 connection. `window`: the stream window announced to the server; with
    `drain=False` the client never acknowledges data, so a stream stalls once the server
    has sent that many bytes (the connection's own window stays at its 65,535 default)."""

    def __init__(self, address: str, *, window: int = 65535, drain: bool = True) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.drain = drain
        self.authority = address.encode()
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True,
                header_encoding=None,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                validate_inbound_headers=False,
            )
        )
        self.h2.initiate_connection()
        self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.replies: dict[int, RawReply] = {}
        self._lock = threading.Lock()
        self._flush()

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def start(self, path: str, message: bytes,
              headers: Sequence[tuple[bytes, bytes]] = (), *, end_stream: bool = True) -> int:
        """Opens a stream sending one request message; returns its stream id.
        `end_stream=False`: the request side stays open (a bidirectional stream)."""
        with self._lock:
            stream_id = self.h2.get_next_available_stream_id()
            self.h2.send_headers(stream_id, [
                (b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()),
                (b":authority", self.authority), (b"content-type", b"application/grpc"),
                (b"te", b"trailers"), *headers,
            ])
            self.h2.send_data(stream_id, grpc_frame(message), end_stream=end_stream)
            self.replies[stream_id] = RawReply()
            self._flush()
        return stream_id

    def pump(self, seconds: float) -> None:
        """Reads and handles what the server sent for up to `seconds` (pings, settings and
        window updates are answered by h2; data is acknowledged only with `drain`)."""
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            self.sock.settimeout(min(left, 0.2))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            self.received(data)

    def received(self, data: bytes) -> None:
        """Handles bytes read from the socket (for callers that read many connections)."""
        with self._lock:
            for event in self.h2.receive_data(data):
                self._handle(event)
            self._flush()

    def _handle(self, event: h2.events.Event) -> None:
        reply = self.replies.get(getattr(event, "stream_id", 0) or 0)
        if reply is None:
            return
        if isinstance(event, h2.events.ResponseReceived):
            reply.headers = dict(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            reply._data(event.data)
            if self.drain:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            reply.trailers = dict(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            reply.ended = True
        elif isinstance(event, h2.events.StreamReset):
            reply.reset = event.error_code
            reply.ended = True

    def call(self, path: str, message: bytes, headers: Sequence[tuple[bytes, bytes]] = (),
             timeout: float = 10.0) -> RawReply:
        """One call to its end (or `timeout`)."""
        stream_id = self.start(path, message, headers)
        reply = self.replies[stream_id]
        until = time.monotonic() + timeout
        while not reply.ended and time.monotonic() < until:
            self.pump(0.05)
        return reply

    def reopen(self, stream_id: int, size: int = 1 << 20) -> None:
        """The stalled reader starts reading: widens the stream's and the connection's
        windows and drains from now on."""
        with self._lock:
            self.drain = True
            self.h2.increment_flow_control_window(size)
            self.h2.increment_flow_control_window(size, stream_id)
            self._flush()

    def close(self) -> None:
        try:
            with self._lock:
                self.h2.close_connection()
                self._flush()
        except OSError:
            pass
        self.sock.close()
