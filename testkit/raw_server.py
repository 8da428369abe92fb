"""A one-handler HTTP server on 127.0.0.1 for tests that need answers the
feed server does not give (a false Content-Encoding, bombs, a body sent one
byte a second).

    async def handler(request: web.Request) -> web.StreamResponse: ...
    async with raw_server(handler) as base:     # "http://127.0.0.1:PORT"
        await fetcher.fetch(base + "/feed")
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

__all__ = ["raw_server"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
