"""An ASGI probe for "stored before the first byte": it reads the app's store when
``http.response.start`` goes out, before passing it on."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from afterward import Afterward, JobState
from afterward.stores import JobFilter


class FirstByteProbe:
    """Middleware: `on_start` gets the store's task states (oldest first) as the response
    starts; `on_end`, if given, is called once the last body chunk was sent."""

    def __init__(
        self,
        app: ASGIApp,
        on_start: Callable[[list[JobState]], None],
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.on_start = on_start
        self.on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def probe(message: Message) -> None:
            if message["type"] == "http.response.start":
                afterward = Afterward.of(scope["app"], scope.get("state"))
                await afterward.open()
                jobs = await afterward.store.list(JobFilter())
                self.on_start([job.state for job in reversed(jobs)])
            await send(message)
            last = message["type"] == "http.response.body" and not message.get("more_body")
            if last and self.on_end is not None:
                self.on_end()

        await self.app(scope, receive, probe)
