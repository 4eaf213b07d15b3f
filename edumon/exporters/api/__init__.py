"""The status API: district, schools, switches, terminals, events, compliance and availability
under /api/v1, plus /metrics.

One module per area of routes (``district``, ``schools``, ``switches``, ``events``,
``terminals``, ``availability``, ``outages``, ``alertmanager``), each a function that returns
an ``APIRouter`` over the runtime; ``mapping`` turns state and reports into the schemas,
``csv_report`` renders reports as CSV, ``queries`` parses query parameters and ``lookup``
finds what a request names (or answers 404/503). ``create_app`` mounts them all.

Every handler is ``async``: the network state is owned by the event loop (the collector
mutates it between awaits), so reading it on the loop, not in a worker thread, always sees
a consistent snapshot.
"""

from edumon.exporters.api.app import READY_TIMEOUT_SECONDS, create_app
from edumon.exporters.api.lookup import API_PREFIX

__all__ = ["API_PREFIX", "READY_TIMEOUT_SECONDS", "create_app"]
