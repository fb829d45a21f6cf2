"""The batched tallies (tallies.py): a scrape reports exactly what prometheus-client's own
Histogram.observe and Counter.inc would have — every bucket, count and sum, to the last bit of the
float sum — whenever they are flushed, and Metrics flushes before every render."""

import random
import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from sekisho.metrics import STAGE_BUCKETS, STAGES, Metrics
from sekisho.tallies import BatchedHistogram, BatchedTally, DirectTally, Tally

_CREATED = re.compile(rb"^\S+_created\S* \S+\n", re.M)  # creation times differ by nature


def _pair() -> tuple[Histogram, CollectorRegistry, Histogram, CollectorRegistry]:
    registries = CollectorRegistry(), CollectorRegistry()
    direct, batched = (
        Histogram("stage_seconds", "Time.", ("stage",), buckets=STAGE_BUCKETS, registry=r)
        for r in registries
    )
    return direct, registries[0], batched, registries[1]


def _text(registry: CollectorRegistry) -> bytes:
    return _CREATED.sub(b"", generate_latest(registry))


AMOUNTS = [0.0, 0.00005, 0.00004999, 0.0001, 0.00025001, 1.0, 1.0000001, 7.5]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_flushed_batch_exports_what_direct_observations_do(seed: int) -> None:
    direct, direct_registry, batched, batched_registry = _pair()
    histogram = BatchedHistogram(batched.labels("sign"), STAGE_BUCKETS)
    child = direct.labels("sign")
    draw = random.Random(seed)  # noqa: S311 (reproducible amounts)
    for round_ in range(3):  # flushed again and again, as scrapes do
        amounts = [*AMOUNTS, *(draw.expovariate(2000) for _ in range(1000))]
        draw.shuffle(amounts)
        for amount in amounts[: 400 * (round_ + 1)]:
            child.observe(amount)
            histogram.add(amount)
        assert _text(batched_registry) != _text(direct_registry)  # nothing copied yet
        histogram.flush()
        assert _text(batched_registry) == _text(direct_registry)


def test_metrics_render_reports_every_stage_observation() -> None:
    metrics = Metrics(max_audiences=5)
    metrics.exchange_finished(
        outcome="granted",
        reason="",
        audience="a",
        entrypoint="grpc",
        seconds=0.003,
        stages=[("verify", seconds) for seconds in (0.00003, 0.0004, 2.0)],
    )
    body = metrics.render()[0].decode()
    assert 'sekisho_stage_duration_seconds_count{stage="verify"} 3.0' in body
    assert 'sekisho_stage_duration_seconds_bucket{le="5e-05",stage="verify"} 1.0' in body
    assert 'sekisho_stage_duration_seconds_bucket{le="0.0005",stage="verify"} 2.0' in body
    assert 'sekisho_stage_duration_seconds_bucket{le="+Inf",stage="verify"} 3.0' in body
    assert f'sekisho_stage_duration_seconds_sum{{stage="verify"}} {0.00003 + 0.0004 + 2.0}' in body
    assert 'sekisho_stage_duration_seconds_count{stage="total"} 1.0' in body
    labels = 'audience="a",entrypoint="grpc",outcome="granted",reason=""'
    assert f"sekisho_exchanges_total{{{labels}}} 1.0" in body


def _tallies() -> tuple[Tally, CollectorRegistry, Tally, CollectorRegistry, list[Counter]]:
    """A BatchedTally and a DirectTally over twin registries, and the twin outcome counters."""
    registries = CollectorRegistry(), CollectorRegistry()
    counters = [Counter("exchanges", "Exchanges.", ("outcome",), registry=r) for r in registries]
    histograms = [
        Histogram("stage_seconds", "Time.", ("stage",), buckets=STAGE_BUCKETS, registry=r)
        for r in registries
    ]
    batched = BatchedTally({s: histograms[0].labels(s) for s in STAGES}, STAGE_BUCKETS)
    direct = DirectTally({s: histograms[1].labels(s) for s in STAGES})
    return batched, registries[0], direct, registries[1], counters


def test_a_flushed_tally_exports_what_direct_counting_does() -> None:
    """Counts and stage times of many exchanges, flushed three times (and folded in bulk on the
    way), export what counting each into prometheus-client at once exports (the multiprocess
    mode's DirectTally), to the last bit of every sum."""
    batched, batched_registry, direct, direct_registry, counters = _tallies()
    outcomes = {
        (tally, outcome): tally.counter(counter.labels(outcome))
        for tally, counter in ((batched, counters[0]), (direct, counters[1]))
        for outcome in ("granted", "refused")
    }
    draw = random.Random(7)  # noqa: S311 (reproducible amounts)
    granted = 0
    for exchanges in (300, 2500, 10):  # 2,500: folded on the way, at the bound
        for _ in range(exchanges):
            outcome = draw.choice(("granted", "refused"))
            granted += outcome == "granted"
            stages = [(stage, draw.expovariate(3000)) for stage in STAGES[: draw.randint(0, 3)]]
            total = sum(seconds for _, seconds in stages) + draw.expovariate(5000)
            for tally in (batched, direct):
                tally.record(outcomes[tally, outcome], total, stages)
        assert _text(batched_registry) != _text(direct_registry)  # nothing copied yet
        batched.flush()
        assert _text(batched_registry) == _text(direct_registry)
    assert f'exchanges_total{{outcome="granted"}} {float(granted)}\n'.encode() in _text(
        batched_registry
    )


@pytest.mark.parametrize("pending", [False, True], ids=["added", "folded"])
def test_nan_is_in_the_sum_and_in_no_bucket_as_there(pending: bool) -> None:
    direct, direct_registry, batched, batched_registry = _pair()
    histogram = BatchedHistogram(batched.labels("x"), STAGE_BUCKETS)
    for amount in (0.001, float("nan"), 0.5, 7.0):
        direct.labels("x").observe(amount)
        if pending:
            histogram.pending.append(amount)
        else:
            histogram.add(amount)
    histogram.flush()
    assert _text(batched_registry) == _text(direct_registry)
