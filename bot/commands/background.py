"""Work a command starts and answers later (/subscribe, imports, broadcasts).

It runs as a task of its own, so that no update handler waits on a fetch;
a stop cancels what is still running (a fetch in flight stores nothing, an
import keeps the feeds it already added) instead of waiting it out, so
SIGTERM is prompt however slow the servers users named.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, MutableMapping
from typing import Any

from telegram import Update
from telegram.ext import ContextTypes

TASKS_KEY = "feedbot.background"


def run_in_background(
    context: ContextTypes.DEFAULT_TYPE,
    work: Coroutine[Any, Any, None],
    *,
    update: Update,
    name: str,
) -> None:
    """Run ``work`` as a task; its errors reach the error handler with ``update``."""
    task = context.application.create_task(work, update=update, name=name)
    tasks: set[asyncio.Task[Any]] = context.bot_data.setdefault(TASKS_KEY, set())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def cancel_background(bot_data: MutableMapping[str, Any]) -> None:
    tasks: set[asyncio.Task[Any]] = bot_data.get(TASKS_KEY, set())
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
