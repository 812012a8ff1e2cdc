"""The gRPC services' full names, read from the proto descriptors (health checks,
the caller policy, spans and reflection all name them; none spells them out)."""

from __future__ import annotations

from zoho.broker.v1 import broker_pb2
from zoho.notifier.v1 import notifier_pb2

BROKER = broker_pb2.DESCRIPTOR.services_by_name["TokenBrokerService"]
NOTIFIER = notifier_pb2.DESCRIPTOR.services_by_name["NotifierService"]
BROKER_SERVICE_NAME = BROKER.full_name
NOTIFIER_SERVICE_NAME = NOTIFIER.full_name
