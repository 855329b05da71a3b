"""How the data routes are served: `RequestRoute`s, added to the app itself by a `DataRouter`.

FastAPI documents a `RequestRoute` from its endpoint's signature like any other route (path
parameters, responses, request body), but per request it skips what the data endpoints do not use:
parameter validation, dependency resolution and the per-request exit stacks. The endpoint is called
as `endpoint(request, **path_params)`; what it raises reaches the app's exception handlers as from any
other route. On the single-event hot path that machinery took about a quarter of the CPU per request.

The routes are added to the app itself, not through `include_router`: FastAPI matches the routes of
an included router twice per request and wraps them in its own request handling again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

Endpoint = Callable[..., Awaitable[Response]]
E = TypeVar("E", bound=Endpoint)


class RequestRoute(APIRoute):
    """An APIRoute whose endpoint takes the request and the path parameters, nothing else."""

    def __init__(self, path: str, endpoint: Endpoint, **options: Any) -> None:
        super().__init__(path, endpoint, **options)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            response = await endpoint(Request(scope, receive, send), **scope["path_params"])
            await response(scope, receive, send)

        self.app = app


class DataRouter:
    """POST routes declared as on an APIRouter, added to an app as `RequestRoute`s by `install`."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, Endpoint, dict[str, Any]]] = []

    def post(self, path: str, **options: Any) -> Callable[[E], E]:
        """Decorator: `options` are those of `APIRouter.post` (status_code, summary, responses...)."""

        def register(endpoint: E) -> E:
            self.add(path, endpoint, **options)
            return endpoint

        return register

    def add(self, path: str, endpoint: Endpoint, **options: Any) -> None:
        self._routes.append((path, endpoint, options))

    def install(self, app: FastAPI) -> None:
        for path, endpoint, options in self._routes:
            app.router.add_api_route(
                path, endpoint, methods=["POST"], route_class_override=RequestRoute, **options
            )
