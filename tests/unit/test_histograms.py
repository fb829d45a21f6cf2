"""BatchedHistogram (histograms.py): a scrape reports exactly what prometheus-client's own
Histogram.observe would have — every bucket, count and sum, to the last bit of the float sum —
whenever it is flushed, and Metrics flushes before every render."""

import random
import re

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from sekisho.histograms import BatchedHistogram
from sekisho.metrics import STAGE_BUCKETS, Metrics

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
            histogram.observe(amount)
        assert _text(batched_registry) != _text(direct_registry)  # nothing copied yet
        histogram.flush()
        assert _text(batched_registry) == _text(direct_registry)


def test_metrics_render_reports_every_stage_observation() -> None:
    metrics = Metrics(max_audiences=5)
    for seconds in (0.00003, 0.0004, 2.0):
        metrics.stage_finished("verify", seconds)
    metrics.exchange_finished(
        outcome="granted", reason="", audience="a", entrypoint="grpc", seconds=0.003
    )
    body = metrics.render()[0].decode()
    assert 'sekisho_stage_duration_seconds_count{stage="verify"} 3.0' in body
    assert 'sekisho_stage_duration_seconds_bucket{le="5e-05",stage="verify"} 1.0' in body
    assert 'sekisho_stage_duration_seconds_bucket{le="0.0005",stage="verify"} 2.0' in body
    assert 'sekisho_stage_duration_seconds_bucket{le="+Inf",stage="verify"} 3.0' in body
    assert f'sekisho_stage_duration_seconds_sum{{stage="verify"}} {0.00003 + 0.0004 + 2.0}' in body
    assert 'sekisho_stage_duration_seconds_count{stage="total"} 1.0' in body


def test_nan_is_in_the_sum_and_in_no_bucket_as_there() -> None:
    direct, direct_registry, batched, batched_registry = _pair()
    histogram = BatchedHistogram(batched.labels("x"), STAGE_BUCKETS)
    for amount in (0.001, float("nan")):
        direct.labels("x").observe(amount)
        histogram.observe(amount)
    histogram.flush()
    assert _text(batched_registry) == _text(direct_registry)
