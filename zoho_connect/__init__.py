"""A Python client for the notifier's callers.

    watch(channel, ...)                      WatchNotifications, resumed across disconnects
    consume(channel, consumer_id, handler)   a server-held consumer through Pull, with acks

Errors are zoho_connect.errors types, one per ErrorInfo reason."""

from zoho_connect.backoff import Backoff
from zoho_connect.consume import consume
from zoho_connect.errors import NotifierError, error_from
from zoho_connect.watch import watch

__all__ = ["Backoff", "NotifierError", "consume", "error_from", "watch"]
