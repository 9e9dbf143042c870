"""Serve the seeded Pterodactyl peer on a port until stopped, for bench/ (a panel that a
separate ``guildhall serve`` process can reach): ``python -m tests.peers.pterodactyl PORT``."""

from __future__ import annotations

import asyncio
import sys

from tests.peers.pterodactyl.peer import running_pterodactyl


async def serve(port: int) -> None:
    async with running_pterodactyl(port=port):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
