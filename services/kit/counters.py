"""Work counters every service exposes on /metrics (the Prometheus default registry): the
database commands it sends and the calls it makes to other services, so a benchmark or a
dashboard can tell how much work one request costs (bench/api.py divides them by requests)."""

from __future__ import annotations

from prometheus_client import Counter
from pymongo import monitoring

DB_COMMANDS = Counter(
    "checkout_db_commands",
    "Database commands sent, by command name (hello/ping of the driver's monitors excluded).",
    ["command"],
)
SERVICE_CALLS = Counter(
    "checkout_service_calls",
    "HTTP requests sent to other services (each attempt, retries included), by target.",
    ["target"],
)
# Sent by the driver's own monitoring and connection handshakes, not by a request.
_BACKGROUND = frozenset({"hello", "ismaster", "isMaster", "ping", "endSessions", "buildInfo"})


class CommandCounter(monitoring.CommandListener):
    """Counts each command the client sends (a PyMongo command listener)."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in _BACKGROUND:
            DB_COMMANDS.labels(event.command_name).inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
