"""The full path template and methods of every route, for access logs and 405 `Allow` headers."""

from __future__ import annotations

import re

from fastapi import APIRouter
from starlette.routing import BaseRoute, compile_path


class RouteIndex:
    def __init__(self, routers: list[APIRouter]) -> None:
        self._templates: dict[int, str] = {}
        self._patterns: list[tuple[re.Pattern[str], set[str]]] = []
        for router in routers:
            for route in router.routes:
                template = getattr(route, "path", "")
                self._templates[id(route)] = template
                self._patterns.append(
                    (
                        compile_path(template)[0],
                        set(getattr(route, "methods", ()) or ()),
                    )
                )

    def template_of(self, route: BaseRoute | None) -> str | None:
        return self._templates.get(id(route)) or getattr(route, "path", None)

    def methods_at(self, path: str) -> list[str]:
        methods: set[str] = set()
        for pattern, route_methods in self._patterns:
            if pattern.match(path):
                methods |= route_methods
        return sorted(methods)
