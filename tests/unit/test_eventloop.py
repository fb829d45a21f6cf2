"""[server] event_loop: the loop policy `sekisho serve` installs before it starts."""

import asyncio
from collections.abc import Iterator

import pytest
import uvloop
from sekisho.eventloop import install


@pytest.fixture
def restore_policy() -> Iterator[None]:
    policy = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(policy)


@pytest.mark.usefixtures("restore_policy")
@pytest.mark.parametrize(
    ("choice", "loop_type"), [("uvloop", uvloop.Loop), ("asyncio", asyncio.BaseEventLoop)]
)
def test_new_loops_are_of_the_chosen_kind(choice: str, loop_type: type) -> None:
    install(choice)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, loop_type)
        assert isinstance(loop, uvloop.Loop) == (choice == "uvloop")
    finally:
        loop.close()
