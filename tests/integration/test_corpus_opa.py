"""The decision corpus through a live OPA server, published by OpaPolicyEngine (manage = true):
every case gets the expected decision, identical to the embedded engine's."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sekisho.policy.corpus import DecisionCase, case_source, data_key, load_cases
from sekisho.policy.opa.engine import OpaPolicyEngine
from sekisho.policy.replay import replay_embedded
from sekisho.policy.source import load_source

from tests.embedded import loaded_engine
from tests.harness import POLICIES
from tests.integration.opa_fixtures import QUERY, opa_engine, shipped_copy
from tests.opa import OpaServer

pytestmark = pytest.mark.integration

CASES = load_cases(POLICIES)
SOURCE = load_source(POLICIES)


class PublishedOpa:
    """One OPA, republished only when a case's data patch differs from the last one."""

    def __init__(self, engine: OpaPolicyEngine) -> None:
        self.engine = engine
        self.published = ""


@pytest.fixture(scope="module")
async def published(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PublishedOpa]:
    folder = tmp_path_factory.mktemp("corpus")
    server = OpaServer(folder / "opa.log").start()
    engine = opa_engine(server.url, shipped_copy(folder), interval=60)
    await engine.start()
    yield PublishedOpa(engine)
    await engine.close()
    server.stop()


@pytest.fixture(scope="module")
def embedded() -> dict[str, Any]:
    return {
        result.case.name: result.actual
        for result in replay_embedded(CASES, SOURCE, loaded_engine(POLICIES, QUERY).policy)
    }


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_opa_server_gives_the_expected_and_the_embedded_decision(
    published: PublishedOpa, embedded: dict[str, Any], case: DecisionCase
) -> None:
    if data_key(case) != published.published:
        await published.engine.publish(case_source(SOURCE, case))
        published.published = data_key(case)
    actual = await published.engine.evaluate_raw(case.input)
    assert actual == case.expected
    assert actual == embedded[case.name]


def test_the_corpus_is_not_empty() -> None:
    assert len(CASES) >= 40
