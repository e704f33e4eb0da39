"""While the server drains before it stops, every answer closes its connection: a client's next
request (a worker's next claim) opens a new one, which the load balancer sends to a replica
that is not stopping."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def is_stopping(scope: Scope) -> bool:
    """True once the app's lifespan resolved `app.state.stopping` (a stop signal came)."""
    app = scope.get("app")
    stopping: asyncio.Future[None] | None = getattr(getattr(app, "state", None), "stopping", None)
    return stopping is not None and stopping.done()


class CloseConnectionsWhileStopping:
    """Plain ASGI middleware; a request that starts before the stop passes through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_stopping(scope):
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_closing)
