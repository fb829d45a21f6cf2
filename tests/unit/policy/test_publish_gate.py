"""PublishGate: no decision overlaps a publish of OPA's policy (opa/gate.py)."""

import asyncio

from sekisho.policy.opa.gate import PublishGate


async def test_a_publish_waits_for_decisions_in_flight() -> None:
    gate = PublishGate()
    events: list[str] = []
    decision_may_finish = asyncio.Event()

    async def decision() -> None:
        async with gate.reading():
            events.append("decision started")
            await decision_may_finish.wait()
            events.append("decision finished")

    async def publish() -> None:
        async with gate.writing():
            events.append("publish")

    reader = asyncio.create_task(decision())
    await asyncio.sleep(0)
    writer = asyncio.create_task(publish())
    await asyncio.sleep(0.01)
    assert events == ["decision started"]  # the publish is held back
    decision_may_finish.set()
    await asyncio.gather(reader, writer)
    assert events == ["decision started", "decision finished", "publish"]


async def test_decisions_wait_while_a_publish_runs() -> None:
    gate = PublishGate()
    events: list[str] = []
    publish_may_finish = asyncio.Event()

    async def publish() -> None:
        async with gate.writing():
            events.append("publish started")
            await publish_may_finish.wait()
            events.append("publish finished")

    async def decision() -> None:
        async with gate.reading():
            events.append("decision")

    writer = asyncio.create_task(publish())
    await asyncio.sleep(0)
    readers = [asyncio.create_task(decision()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert events == ["publish started"]
    assert gate.publishing
    publish_may_finish.set()
    await asyncio.gather(writer, *readers)
    assert events == ["publish started", "publish finished", "decision", "decision", "decision"]
    assert not gate.publishing


async def test_publishes_do_not_overlap_each_other() -> None:
    gate = PublishGate()
    inside = 0
    most = 0

    async def publish() -> None:
        nonlocal inside, most
        async with gate.writing():
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.005)
            inside -= 1

    await asyncio.gather(*(publish() for _ in range(4)))
    assert most == 1


async def test_decisions_run_concurrently_with_each_other() -> None:
    gate = PublishGate()
    both_inside = asyncio.Event()
    inside = 0

    async def decision() -> None:
        nonlocal inside
        async with gate.reading():
            inside += 1
            if inside == 2:
                both_inside.set()
            await asyncio.wait_for(both_inside.wait(), timeout=1)

    await asyncio.gather(decision(), decision())
