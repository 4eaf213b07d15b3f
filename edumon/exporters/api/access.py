"""Who may see which schools: the principal a request carries (district or one school).

The API's routes and the status page ask ``visible_schools(request)`` and show only those
schools: a list is filtered to them, and a school, switch, classroom or terminal outside them
answers 404 as an unknown one would. The token check that sets the principal lives here too.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection


def visible_schools(request: HTTPConnection) -> frozenset[str] | None:
    """The school codes this request may see; None means every school (the district role).

    ``request.state.principal`` is set by the access middleware when tokens are configured;
    without tokens (loopback only) every request sees the whole district.
    """
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return None
    schools: frozenset[str] | None = getattr(principal, "schools", None)
    return schools
