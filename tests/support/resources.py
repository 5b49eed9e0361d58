"""Web resources that stand in for the daemon's site behind the checks under test."""

from __future__ import annotations

from twisted.web.resource import Resource


class Echo(Resource):
    """Answers every request with C{ok}."""

    isLeaf = True

    def render(self, request):  # type: ignore[no-untyped-def]
        return b"ok"
