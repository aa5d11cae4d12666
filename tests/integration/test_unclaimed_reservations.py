"""A request's reserved chain whose response never ran its background (the client went
away mid-stream) is handed to the queue after a lease, not held for ever."""

from __future__ import annotations

import asyncio

from afterward import Afterward, JobState, Settings
from afterward.testing import drain

from . import apps


async def test_a_reservation_no_chain_claims_is_handed_to_the_queue(store_url: str) -> None:
    # Given an Afterward with a short lease (with no runner of its own: this test plays
    # the in-app runner's part by hand), and a request's chain committed and reserved for
    # this process, whose run after the response never comes
    afterward = Afterward(settings=Settings(url=store_url, lease=0.3, execution="workers"))
    apps.EVENTS.clear()
    try:
        jobs = [afterward.prepare(apps.record, ("unclaimed", str(n)), {}) for n in range(2)]
        ids = await afterward.enqueue_chain(jobs, reserve=True)
        runner = afterward.runner
        # When its leases are renewed within a lease, Then they stay reserved
        await runner.upkeep.renew_leases()
        assert await drain(afterward) == [] and apps.EVENTS == []
        # When more than a lease passes unclaimed, renewed all along as the in-app
        # runner renews them
        for _ in range(6):
            await asyncio.sleep(0.1)
            await runner.upkeep.renew_leases()
        # Then they are handed to the queue, and run in order by whoever takes them
        assert await drain(afterward) == []
        assert apps.EVENTS == [("unclaimed", "0"), ("unclaimed", "1")]
        assert [(await afterward.get(i)).state for i in ids] == [JobState.SUCCEEDED] * 2
    finally:
        await afterward.aclose()
