"""Metrics and tracing of the exchange pipeline (docs/operations.md): outcomes by reason, stage
latencies, bounded audience labels, cache and key gauges, JWKS fetch counting, spans per stage,
and nothing at all recorded when both are switched off."""

import contextlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sekisho import metrics as metrics_module
from sekisho.config import Settings, TracingConfig
from sekisho.errors import ConfigError, ServiceError
from sekisho.instruments import ExchangeInstruments
from sekisho.metrics import (
    MULTIPROC_ENV,
    OTHER_AUDIENCE,
    UNKNOWN_AUDIENCE,
    AudienceLabels,
    MeteredFetcher,
    Metrics,
)
from sekisho.observability import build_observability
from sekisho.policy.wasm.bundle_status import DOWNLOAD_FAILED, REJECTED, BundleStatus
from sekisho.tracing import build_tracing
from sekisho.verify.fetcher import FetchError

from tests.fakes.clock import FakeClock
from tests.fakes.fetcher import FakeFetcher
from tests.harness import CRM_AUDIENCE, DOCS_AUDIENCE, Harness, build_harness


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    return _samples(metrics).get((name, tuple(sorted(labels.items()))), 0.0)


def _instrumented(tmp_path: Path, **kwargs: Any) -> tuple[Harness, Metrics]:
    metrics = Metrics(max_audiences=kwargs.pop("max_audiences", 50))
    harness = build_harness(tmp_path / "keys", instruments=ExchangeInstruments(metrics, **kwargs))
    return harness, metrics


async def test_exchanges_are_counted_by_outcome_reason_audience_and_stage(tmp_path: Path) -> None:
    harness, metrics = _instrumented(tmp_path)
    now = harness.clock.now()
    await harness.exchanger.exchange(harness.request(harness.idp_a.token(now)))
    with pytest.raises(ServiceError) as refused:
        # Refused at verification: the token was issued for another client.
        await harness.exchanger.exchange(harness.request(harness.idp_a.token(now, aud="other")))
    granted = {"outcome": "granted", "reason": "", "audience": CRM_AUDIENCE, "entrypoint": "grpc"}
    assert _value(metrics, "sekisho_exchanges_total", **granted) == 1
    denied = {**granted, "outcome": "refused", "reason": refused.value.reason}
    assert refused.value.reason != ""
    assert _value(metrics, "sekisho_exchanges_total", **denied) == 1
    for stage, count in (("verify", 2), ("policy", 1), ("sign", 1), ("total", 2)):
        assert _value(metrics, "sekisho_stage_duration_seconds_count", stage=stage) == count


async def test_counts_keep_adding_up_across_scrapes(tmp_path: Path) -> None:
    """Batched in one process (tallies.py): every scrape shows every exchange finished so far,
    the outcome counter and each stage's histogram alike, however many scrapes came between."""
    harness, metrics = _instrumented(tmp_path)
    token = harness.idp_a.token(harness.clock.now())
    granted = {"outcome": "granted", "reason": "", "audience": CRM_AUDIENCE, "entrypoint": "grpc"}
    done = 0
    for more in (1, 2, 1):
        for _ in range(more):
            await harness.exchanger.exchange(harness.request(token))
        done += more
        assert _value(metrics, "sekisho_exchanges_total", **granted) == done
        for stage in ("verify", "policy", "sign", "total"):
            assert _value(metrics, "sekisho_stage_duration_seconds_count", stage=stage) == done
            le_inf = {"stage": stage, "le": "+Inf"}
            assert _value(metrics, "sekisho_stage_duration_seconds_bucket", **le_inf) == done
        assert _value(metrics, "sekisho_stage_duration_seconds_sum", stage="sign") > 0


_WORKER = """
import asyncio, sys
from sekisho.errors import AccessDeniedError
from sekisho.instruments import ExchangeInstruments
from sekisho.metrics import Metrics

async def main():
    instruments = ExchangeInstruments(Metrics(max_audiences=5, multiprocess_dir=sys.argv[1]))
    for refuse in (False, False, True):
        try:
            with instruments.exchange("https://as.example", "grpc") as scope:
                for stage in ("verify", "policy", "sign"):
                    with scope.stage(stage):
                        await asyncio.sleep(0)
                if refuse:
                    raise AccessDeniedError("no")
        except AccessDeniedError:
            pass

asyncio.run(main())
"""


def test_workers_count_into_the_shared_folder_at_once(tmp_path: Path) -> None:
    """The multiprocess mode (server.workers > 1): another worker's scrape reads this worker's
    files and never runs its flush, so each exchange is in the files when it ends."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**os.environ, MULTIPROC_ENV: str(folder)}
    for _ in range(2):  # two worker processes, one after the other
        subprocess.run([sys.executable, "-c", _WORKER, str(folder)], env=env, check=True)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }
    audience = ("audience", "https://as.example"), ("entrypoint", "grpc")
    refused = ("outcome", "refused"), ("reason", "access_denied")
    assert samples[("sekisho_exchanges_total", (*audience, *refused))] == 2
    granted = ("outcome", "granted"), ("reason", "")
    assert samples[("sekisho_exchanges_total", (*audience, *granted))] == 4
    refusals = ("code", "access_denied"), ("entrypoint", "grpc")
    assert samples[("sekisho_refusals_total", refusals)] == 2
    for stage in ("verify", "policy", "sign", "total"):
        assert samples[("sekisho_stage_duration_seconds_count", (("stage", stage),))] == 6


async def test_refusals_are_counted_by_internal_code(tmp_path: Path) -> None:
    """An expired token and a foreign audience share the OAuth reason, not the refusal code."""
    harness, metrics = _instrumented(tmp_path)
    now = harness.clock.now()
    for claims in ({"aud": "other"}, {"exp": now - 3600, "iat": now - 7200}):
        with pytest.raises(ServiceError):
            await harness.exchanger.exchange(harness.request(harness.idp_a.token(now, **claims)))
    for code in ("audience_mismatch", "token_expired"):
        labels = {"code": code, "entrypoint": "grpc"}
        assert _value(metrics, "sekisho_refusals_total", **labels) == 1


async def test_entrypoint_views_share_the_pipeline_but_not_the_label(tmp_path: Path) -> None:
    harness, metrics = _instrumented(tmp_path)
    token = harness.idp_a.token(harness.clock.now())
    await harness.exchanger.with_entrypoint("http").exchange(harness.request(token))
    labels = {"outcome": "granted", "reason": "", "audience": CRM_AUDIENCE}
    assert _value(metrics, "sekisho_exchanges_total", **labels, entrypoint="http") == 1
    assert _value(metrics, "sekisho_exchanges_total", **labels, entrypoint="grpc") == 0


async def test_stage_timer_is_the_injected_one(tmp_path: Path) -> None:
    ticks = iter(float(n) for n in range(1000))
    harness, metrics = _instrumented(tmp_path, timer=lambda: next(ticks))
    await harness.exchanger.exchange(harness.request(harness.idp_a.token(harness.clock.now())))
    # Each stage spans exactly one tick of the fake timer: 1 s lands in the 1.0 bucket, not below.
    below = _value(metrics, "sekisho_stage_duration_seconds_bucket", stage="verify", le="0.5")
    at = _value(metrics, "sekisho_stage_duration_seconds_bucket", stage="verify", le="1.0")
    assert (below, at) == (0, 1)


def test_audience_label_is_bounded() -> None:
    labels = AudienceLabels(2)
    granted = [labels(a, granted=True) for a in ("a", "b", "c", "a", "")]
    assert granted == ["a", "b", OTHER_AUDIENCE, "a", UNKNOWN_AUDIENCE]


def test_only_configured_or_granted_audiences_are_named() -> None:
    # Issue 15 item 6: a refused probe never becomes a label, even with free label slots.
    labels = AudienceLabels(50, known=["https://configured.example"])
    assert labels("https://configured.example") == "https://configured.example"
    assert labels("https://probe.evil") == UNKNOWN_AUDIENCE
    assert labels("https://granted.example", granted=True) == "https://granted.example"
    assert labels("https://granted.example") == "https://granted.example"  # now known


# (outcome, audience, entry point) in order: refusals before and after grants of the same
# audience, the label slots filling up (limit 3), an empty audience, two entry points.
_SEQUENCE = [
    ("refused", "https://x.example", "grpc"),
    ("granted", "https://x.example", "grpc"),
    ("refused", "https://x.example", "grpc"),
    ("granted", "https://y.example", "http"),
    ("refused", "https://z.example", "grpc"),
    ("granted", "https://z.example", "grpc"),
    ("granted", "https://w.example", "grpc"),
    ("granted", "https://x.example", "http"),
    ("granted", "https://w.example", "http"),
    ("refused", "https://w.example", "grpc"),
    ("granted", "", "grpc"),
    ("granted", "https://z.example", "ext_authz"),
    ("granted", "https://v.example", "grpc"),
]


def _feed(metrics: Metrics, *, fast: bool) -> None:
    for index, (outcome, audience, entrypoint) in enumerate(_SEQUENCE * 3):
        seconds, stages = 0.001 * index, [("verify", 0.0001 * index), ("sign", 0.0002)]
        if outcome == "granted" and fast:
            metrics.exchange_granted(audience, entrypoint, seconds, stages)
            continue
        metrics.exchange_finished(
            outcome=outcome,
            reason="" if outcome == "granted" else "invalid_target",
            code="" if outcome == "granted" else "audience_unknown",
            audience=audience,
            entrypoint=entrypoint,
            seconds=seconds,
            stages=stages,
        )


def test_the_granted_fast_path_counts_what_exchange_finished_does() -> None:
    # exchange_granted keeps a counter per raw audience: the label it counts under must be the
    # one AudienceLabels gives, also once the slots are full and after refusals of the audience.
    direct, fast = Metrics(max_audiences=3), Metrics(max_audiences=3)
    _feed(direct, fast=False)
    _feed(fast, fast=True)

    def counted(metrics: Metrics) -> dict[Any, float]:  # creation times differ, nothing else
        return {k: v for k, v in _samples(metrics).items() if not k[0].endswith("_created")}

    assert counted(fast) == counted(direct)
    audiences = {dict(labels).get("audience") for name, labels in counted(fast)}
    assert OTHER_AUDIENCE in audiences
    assert UNKNOWN_AUDIENCE in audiences


def test_the_granted_fast_path_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever audiences a policy grants, the per-audience counters kept for the hot path stop
    # at GRANTED_COUNTERS_MAX pairs; the exchanges past it are still counted (full path).
    monkeypatch.setattr(metrics_module, "GRANTED_COUNTERS_MAX", 4)
    metrics = Metrics(max_audiences=2)
    for _ in range(2):
        for n in range(10):
            metrics.exchange_granted(f"https://{n}.example", "grpc", 0.001, ())
    assert len(metrics._granted) == 4
    counted = {
        dict(labels)["audience"]: value
        for (name, labels), value in _samples(metrics).items()
        if name == "sekisho_exchanges_total"
    }
    assert counted == {"https://0.example": 2, "https://1.example": 2, OTHER_AUDIENCE: 16}


async def test_attacker_chosen_audiences_do_not_grow_the_series(tmp_path: Path) -> None:
    harness, metrics = _instrumented(tmp_path, max_audiences=1)
    token = harness.idp_a.token(harness.clock.now())
    for audience in (CRM_AUDIENCE, DOCS_AUDIENCE, "https://a.evil", "https://b.evil"):
        with contextlib.suppress(ServiceError):
            await harness.exchanger.exchange(harness.request(token, audience=audience))
    audiences = {
        dict(labels)["audience"]
        for name, labels in _samples(metrics)
        if name == "sekisho_exchanges_total"
    }
    # CRM was granted (named); the refused ones, attacker-chosen included, are all "unknown".
    assert audiences == {CRM_AUDIENCE, UNKNOWN_AUDIENCE}


class _Cache:
    hits = 7
    misses = 3

    def __len__(self) -> int:
        return 5


def test_sampled_cache_and_key_gauges(tmp_path: Path) -> None:
    harness = build_harness(tmp_path / "keys")
    metrics = Metrics(max_audiences=10)
    metrics.watch_cache("subject", _Cache())
    metrics.watch_keys(lambda: harness.keyring.records)
    metrics.watch_in_flight(lambda: 4)
    now = harness.clock.now() + 100
    metrics.sample(now)
    assert _value(metrics, "sekisho_exchanges_in_flight") == 4
    assert _value(metrics, "sekisho_cache_hits", cache="subject") == 7
    assert _value(metrics, "sekisho_cache_misses", cache="subject") == 3
    assert _value(metrics, "sekisho_cache_entries", cache="subject") == 5
    for record in harness.keyring.records:
        assert _value(metrics, "sekisho_key_age_seconds", kid=record.kid) == pytest.approx(
            now - record.created_at
        )
        state = {"kid": record.kid, "state": record.state.value}
        assert _value(metrics, "sekisho_key_state", **state) == 1
        assert _value(metrics, "sekisho_key_state", kid=record.kid, state="revoked") == 0


async def test_jwks_fetches_and_failures_are_counted_per_issuer() -> None:
    metrics = Metrics(max_audiences=10)
    fetcher = MeteredFetcher(FakeFetcher({"https://idp/jwks": {"keys": []}}), metrics, "idp")
    await fetcher.fetch_json("https://idp/jwks")
    with pytest.raises(FetchError):
        await fetcher.fetch_json("https://idp/missing")
    assert _value(metrics, "sekisho_jwks_fetches_total", issuer="idp") == 2
    assert _value(metrics, "sekisho_jwks_fetch_failures_total", issuer="idp") == 1


async def test_spans_per_stage_under_one_exchange_span(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    tracing = build_tracing(TracingConfig(enabled=True), exporter)
    harness = build_harness(
        tmp_path / "keys", instruments=ExchangeInstruments(tracer=tracing.tracer)
    )
    await harness.exchanger.exchange(harness.request(harness.idp_a.token(harness.clock.now())))
    tracing.shutdown()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"exchange", "verify", "policy", "sign"}
    root = spans["exchange"]
    for name in ("verify", "policy", "sign"):
        parent = spans[name].parent
        assert parent is not None
        assert parent.span_id == root.context.span_id


async def test_switched_off_instruments_record_nothing(tmp_path: Path) -> None:
    off = ExchangeInstruments()
    assert not off.active
    with off.exchange(CRM_AUDIENCE, "grpc") as scope:  # the shared no-op
        assert scope is off.exchange(DOCS_AUDIENCE, "http").__enter__()
        assert scope.stage("verify") is scope.stage("policy")
    harness = build_harness(tmp_path / "keys", instruments=off)
    result = await harness.exchanger.exchange(
        harness.request(harness.idp_a.token(harness.clock.now()))
    )
    assert result.minted.token


def test_observability_follows_the_config() -> None:
    off = build_observability(Settings(metrics={"enabled": False}))
    assert off.metrics is None
    assert off.tracing is None
    assert not off.instruments.active
    on = build_observability(Settings())
    assert on.metrics is not None
    assert on.instruments.active


def test_tracing_without_the_exporter_package_names_the_key() -> None:
    settings = Settings(tracing={"enabled": True})
    if importlib.util.find_spec("opentelemetry.exporter") is not None:
        tracing = build_observability(settings).tracing
        assert tracing is not None
        tracing.shutdown()
        return
    with pytest.raises(ConfigError, match=r"tracing\.enabled"):
        build_observability(settings)


def test_policy_bundle_revision_times_and_failures_are_sampled() -> None:
    clock = FakeClock(1_800_000_000)
    status = BundleStatus(clock)
    metrics = Metrics(max_audiences=10)
    metrics.watch_bundle(status)
    status.failed(DOWNLOAD_FAILED)
    metrics.sample(clock.now())
    assert _value(metrics, "sekisho_policy_bundle_failures", reason="download_failed") == 1
    assert _value(metrics, "sekisho_policy_bundle_last_activation_timestamp_seconds") == 0
    status.activated("v1")
    status.polled()
    metrics.sample(clock.now())
    assert _value(metrics, "sekisho_policy_bundle_info", revision="v1") == 1
    clock.advance(30)
    status.activated("v2")
    status.failed(REJECTED)
    metrics.sample(clock.now())
    assert _value(metrics, "sekisho_policy_bundle_info", revision="v2") == 1
    assert _value(metrics, "sekisho_policy_bundle_info", revision="v1") == 0  # no stale 1
    assert _value(metrics, "sekisho_policy_bundle_last_activation_timestamp_seconds") == (
        1_800_000_030
    )
    assert _value(metrics, "sekisho_policy_bundle_last_poll_timestamp_seconds") == 1_800_000_000
    assert _value(metrics, "sekisho_policy_bundle_failures", reason="rejected") == 1


def test_a_shadow_bundles_failures_are_sampled_apart_from_the_live_ones() -> None:
    clock = FakeClock(1_800_000_000)
    live, shadow = BundleStatus(clock), BundleStatus(clock)
    metrics = Metrics(max_audiences=10)
    metrics.watch_bundle(live)
    metrics.watch_shadow_bundle(shadow)
    shadow.failed(REJECTED)
    shadow.failed(REJECTED)
    live.failed(DOWNLOAD_FAILED)
    metrics.sample(clock.now())
    assert _value(metrics, "sekisho_shadow_policy_bundle_failures", reason="rejected") == 2
    assert _value(metrics, "sekisho_policy_bundle_failures", reason="download_failed") == 1
    failures = {
        (name, dict(labels)["reason"])
        for name, labels in _samples(metrics)
        if name.endswith("_bundle_failures")
    }
    assert failures == {
        ("sekisho_shadow_policy_bundle_failures", "rejected"),
        ("sekisho_policy_bundle_failures", "download_failed"),
    }


def test_bundle_info_keeps_the_serving_and_the_previous_revision_only() -> None:
    """One series per revision ever seen would grow with every publish for the life of the
    process; the one before stays (at 0) so a dashboard sees the change."""
    clock = FakeClock(1_800_000_000)
    status = BundleStatus(clock)
    metrics = Metrics(max_audiences=10)
    metrics.watch_bundle(status)
    for revision in ("v1", "v2", "v3", "v2"):  # the last a rollback
        status.activated(revision)
        metrics.sample(clock.now())
    body = metrics.render()[0].decode()
    info = sorted(
        line for line in body.splitlines() if line.startswith("sekisho_policy_bundle_info")
    )
    assert info == [
        'sekisho_policy_bundle_info{revision="v2"} 1.0',
        'sekisho_policy_bundle_info{revision="v3"} 0.0',
    ]
