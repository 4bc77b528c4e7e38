"""A chat's turn: one chat's replies stay in order, in this process and across
replicas that share PostgreSQL (bot/pg.py's leases; bot/telegram/guards.py's local
coordinator otherwise)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from typing import Any

from bot.telegram.guards import LocalCoordinator

log = logging.getLogger(__name__)

# A chat answered on another replica: polled for its turn from TURN_POLL_S, doubling to
# TURN_POLL_MAX_S (a reply takes a few hundred ms); past TURN_WAIT_S the question is
# answered anyway. The turn is renewed every TURN_RENEW_S (a third of bot/pg.py's lease).
TURN_POLL_S = 0.05
TURN_POLL_MAX_S = 0.4
TURN_WAIT_S = 120.0
TURN_RENEW_S = 20.0


def coordinator_for(sessions: object) -> Any:
    """PostgreSQL's shared coordinator when the sessions live there, else this
    process's own."""
    from bot.pg import PgCoordinator, PgSessionStore

    if isinstance(sessions, PgSessionStore):
        return PgCoordinator(sessions.db, LocalCoordinator())
    return LocalCoordinator()


@asynccontextmanager
async def chat_turn(coordinator: Any, executor: Executor, chat_id: int
                    ) -> AsyncIterator[None]:
    """The chat's turn across replicas (bot/pg.py): polled for without holding a
    thread or a connection, renewed while held, ended after the reply."""
    loop = asyncio.get_running_loop()
    coord, wait = coordinator, TURN_POLL_S
    deadline = loop.time() + TURN_WAIT_S
    while (token := await loop.run_in_executor(executor, coord.try_chat_turn,
                                               chat_id)) is None:
        if loop.time() > deadline:  # a stuck holder must not silence the chat
            log.warning("chat %s: no turn after %.0f s; answering anyway", chat_id,
                        TURN_WAIT_S)
            token = ""
            break
        await asyncio.sleep(wait)
        wait = min(wait * 2, TURN_POLL_MAX_S)

    async def renew() -> None:
        while True:
            await asyncio.sleep(TURN_RENEW_S)
            await loop.run_in_executor(executor, coord.renew_chat_turn, chat_id, token)

    renewing = asyncio.create_task(renew()) if token else None
    try:
        yield
    finally:
        if renewing is not None:
            renewing.cancel()
            await loop.run_in_executor(executor, coord.end_chat_turn, chat_id, token)
