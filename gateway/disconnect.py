"""A client that goes away cancels the work done for it (a plain ASGI middleware).

Starlette notices a lost client only while it streams a response; a unary handler awaiting Triton would wait
for an answer nobody reads, and Triton would compute it. Here, once the handler has read the request body, a
watcher waits for the connection's ``http.disconnect``; if it comes before the response is complete, the
handler's task is cancelled, which cancels its Triton call (over gRPC, Triton passes the cancellation on to the
model, whose work stops between steps; see ``gsv_gateway.triton``). The cancelled request then ends without an
answer (there is nobody to send one to) and the outer middleware counts it as 499.

Messages the watcher takes from ``receive`` are handed on to the handler, so a streaming response's own
disconnect listener still sees them.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class CancelOnDisconnect:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_read = asyncio.Event()
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        state = {"complete": False, "client_gone": False}

        async def app_receive() -> Message:
            if body_read.is_set():
                return await inbox.get()  # the watcher reads the connection from here on
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                body_read.set()
                if message["type"] == "http.disconnect":
                    inbox.put_nowait(message)  # a second read sees it again
            return message

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                state["complete"] = True
            await send(message)

        handler = asyncio.ensure_future(self.app(scope, app_receive, tracked_send))

        async def watch() -> None:
            await body_read.wait()
            while True:
                message = await receive()
                inbox.put_nowait(message)
                if message["type"] == "http.disconnect":
                    if not state["complete"]:
                        state["client_gone"] = True
                        handler.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            await handler
        except asyncio.CancelledError:
            if not state["client_gone"]:
                raise  # we are being cancelled ourselves (server shutdown): pass it on
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if not handler.done():
                handler.cancel()
