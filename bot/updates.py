"""Receiving updates from Telegram: getUpdates polling, or a webhook.

:class:`UpdateReceiver` starts and stops one of the two; the sender role
(bot/roles.py) starts it in the one process that is the sender and stops it
when the process loses the role. Either way the updates land in
``application.update_queue``, which the running Application dispatches to
the handlers.

**Webhook mode** (``[telegram] webhook_url``): only the sender listens. When a
process becomes the sender it binds ``webhook_listen`` and then calls
setWebhook with the URL and ``webhook_secret``; when it stops being the sender
it closes the port. Processes that are not the sender do not listen at all,
so a load balancer in front of several processes sends every update to the
sender (its health check to the webhook port fails on the others). We chose
this over handing updates from any process to the sender through the
database because an update must be answered through the sender's one pacer
anyway: relaying would add a table, a poll loop and latency to every command,
and during a switch Telegram simply retries a POST that found no listener,
so nothing is lost.

Every POST must carry the secret in ``X-Telegram-Bot-Api-Secret-Token``
(compared in constant time); a request without it, or with another value,
gets 403 and changes nothing. Telegram itself only posts to https on ports
443, 80, 88 or 8443: put a TLS-terminating proxy before ``webhook_listen``.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Update
from telegram.ext import Application

from bot.config import TelegramConfig

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class UpdateReceiver:
    """Start or stop receiving updates, in the mode the config says."""

    def __init__(
        self,
        application: Application,
        config: TelegramConfig,
        allowed_updates: Sequence[str],
        *,
        polling_timeout: float = 10.0,
    ) -> None:
        self._application = application
        self._config = config
        self._allowed = list(allowed_updates)
        #: How long one getUpdates waits at Telegram (tests shorten it).
        self.polling_timeout = polling_timeout
        self._runner: web.AppRunner | None = None
        #: The webhook port bound (useful with port 0), None when not listening.
        self.port: int | None = None

    @property
    def webhook(self) -> bool:
        return self._config.webhook_url is not None

    async def start(self) -> None:
        """Begin receiving. Raises (leaving nothing started) when Telegram
        cannot be reached or the webhook port cannot be bound; the sender
        role tries again at its next step."""
        if self.webhook:
            await self._start_webhook()
        else:
            updater = self._application.updater
            assert updater is not None
            # start_polling first deletes any webhook (Telegram answers
            # getUpdates with 409 while one is set), keeping pending updates.
            await updater.start_polling(
                poll_interval=0.0,
                timeout=int(self.polling_timeout),
                allowed_updates=self._allowed,
                bootstrap_retries=3,
            )

    async def stop(self) -> None:
        """Stop receiving. In webhook mode the webhook stays registered, so
        Telegram keeps updates until the next sender listens."""
        if self._runner is not None:
            runner, self._runner, self.port = self._runner, None, None
            await runner.cleanup()
        updater = self._application.updater
        if updater is not None and updater.running:
            await updater.stop()

    # -- webhook -------------------------------------------------------------
    async def _start_webhook(self) -> None:
        url, secret = self._config.webhook_url, self._config.webhook_secret
        assert url is not None and secret is not None, "config.py requires the secret"
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post(urlsplit(url).path or "/", self._receive)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, *self._config.webhook_listen)
            await site.start()
            # Listen first, then tell Telegram: its first POST finds us.
            await self._application.bot.set_webhook(
                url=url,
                secret_token=secret,
                allowed_updates=self._allowed,
                drop_pending_updates=False,
            )
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        host = self._config.webhook_listen[0]
        log.info("receiving updates at %s (listening on %s:%d)", url, host, self.port)

    async def _receive(self, request: web.Request) -> web.Response:
        secret = self._config.webhook_secret or ""
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            log.warning("webhook: refused a request without the secret from %s", request.remote)
            return web.Response(status=403, text="forbidden\n")
        try:
            data = json.loads(await request.read())
            update = Update.de_json(data, self._application.bot)
        except (ValueError, TypeError, KeyError) as e:
            log.warning("webhook: an update that cannot be read: %s", e)
            return web.Response(status=400, text="bad update\n")
        await self._application.update_queue.put(update)
        return web.Response(text="ok\n")
