"""Each route's own path template and the methods served at it, for access logs, metrics and 405 `Allow`
headers: taken from the route routing chose, never from the request's URL, so a root path or a mount
prefix changes neither."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute


class RouteIndex:
    def __init__(self, app: FastAPI) -> None:
        self._templates: dict[int, str] = {}  # by id: a Starlette route is not hashable
        self._methods: dict[str, set[str]] = {}
        for context in iter_route_contexts(app.routes):
            if context.path is None:
                continue
            self._templates[id(context.original_route)] = context.path
            self._methods.setdefault(context.path, set()).update(context.methods or ())

    def template_of(self, route: BaseRoute | None) -> str | None:
        """The full path template of the route routing chose (`/api/v1/users/{user_id}/tasks`)."""
        if route is None:
            return None
        return self._templates.get(id(route)) or getattr(route, "path", None)

    def methods_at(self, route: BaseRoute | None) -> list[str]:
        """Every method served at the chosen route's path, whichever route serves it."""
        template = self.template_of(route)
        methods = self._methods.get(template, set()) if template is not None else set()
        return sorted(methods or getattr(route, "methods", None) or ())
