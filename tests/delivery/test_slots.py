"""The dispatcher's send slots: a freed slot goes to an urgent waiter first."""

from __future__ import annotations

import asyncio

from notifier.delivery.slots import Slots


async def test_a_freed_slot_goes_to_the_urgent_waiter_before_those_that_came_first() -> None:
    slots = Slots(1)
    order: list[str] = []
    release = asyncio.Event()

    async def send(name: str, urgent: bool = False) -> None:
        async with slots.held(urgent):
            order.append(name)
            if name == "first":
                await release.wait()

    first = asyncio.create_task(send("first"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(send(f"news-{n}")) for n in range(3)]
    await asyncio.sleep(0)
    urgent = asyncio.create_task(send("order", urgent=True))
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *waiting, urgent)
    assert order == ["first", "order", "news-0", "news-1", "news-2"]


async def test_a_cancelled_waiter_leaves_its_place_and_no_slot_is_lost() -> None:
    slots = Slots(1)
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with slots.held():
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()

    async def wait_for_a_slot() -> None:
        async with slots.held():
            pass

    given_up = asyncio.create_task(wait_for_a_slot())
    await asyncio.sleep(0)
    given_up.cancel()
    release.set()
    await holder
    async with asyncio.timeout(1), slots.held():
        pass  # the one slot is free again
