"""A scrape's snapshot in the Prometheus text format, through prometheus-client."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from labfleet.db.repositories.metrics import Histogram
from labfleet.services.metrics.service import BUILD_BOUNDS, PIPELINE_BOUNDS, STAGE_BOUNDS, Snapshot


def _histogram(
    name: str, doc: str, labels: Sequence[str], rows: Iterable[Histogram], bounds: Sequence[float]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    for row in rows:
        edges = [*(floatToGoString(b) for b in bounds), "+Inf"]  # type: ignore[no-untyped-call]
        family.add_metric(list(row.labels), list(zip(edges, map(float, row.buckets), strict=True)), row.total)
    return family


def _inventory(s: Snapshot) -> Iterator[Metric]:
    resources = GaugeMetricFamily(
        "labfleet_resources", "Resources by kind and status.", labels=["kind", "status"]
    )
    for kind, status, n in s.resources:
        resources.add_metric([kind, status], n)
    yield resources
    c = s.capacity
    capacity = GaugeMetricFamily(
        "labfleet_capacity",
        "Capacity of the resources in service, and how much is taken.",
        labels=["resource", "state"],
    )
    for resource, total, used in (
        ("build_slots", c.build_slots, c.builds_running),
        ("host_vcpus", c.host_vcpus, c.host_vcpus_reserved),
        ("host_memory_mb", c.host_memory_mb, c.host_memory_mb_reserved),
        ("boards", c.boards, c.boards_reserved),
    ):
        capacity.add_metric([resource, "total"], total)
        capacity.add_metric([resource, "used"], used)
    yield capacity


def _work(s: Snapshot) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "labfleet_queue_depth", "Work waiting to start.", labels=["work", "architecture"]
    )
    wait = GaugeMetricFamily(
        "labfleet_queue_oldest_wait_seconds",
        "How long the oldest waiting work has waited.",
        labels=["work", "architecture"],
    )
    for work, arch, n, oldest in s.queues:
        depth.add_metric([work, arch], n)
        wait.add_metric([work, arch], oldest)
    yield depth
    yield wait
    yield _histogram(
        "labfleet_build_duration_seconds",
        "Finished builds, start to end.",
        ["status"],
        s.builds,
        BUILD_BOUNDS,
    )
    yield _histogram(
        "labfleet_stage_duration_seconds",
        "Finished pipeline stages.",
        ["stage", "status"],
        s.stages,
        STAGE_BOUNDS,
    )
    yield _histogram(
        "labfleet_pipeline_duration_seconds", "Finished pipelines.", ["status"], s.pipelines, PIPELINE_BOUNDS
    )
    results = CounterMetricFamily(
        "labfleet_pipelines_finished",
        "Finished pipelines by outcome and the stage that failed.",
        labels=["outcome", "failed_stage"],
    )
    for outcome, stage, n in s.pipeline_results:
        results.add_metric([outcome, stage], n)
    yield results


def _operations(s: Snapshot) -> Iterator[Metric]:
    alerts = GaugeMetricFamily(
        "labfleet_alerts_open", "Unresolved alerts.", labels=["severity", "resource_kind"]
    )
    for severity, kind, n in s.alerts:
        alerts.add_metric([severity, kind], n)
    yield alerts
    deliveries = GaugeMetricFamily(
        "labfleet_notification_deliveries",
        "Notification deliveries by transport and state.",
        labels=["transport", "state"],
    )
    for transport, state, n in s.deliveries:
        deliveries.add_metric([transport, state], n)
    yield deliveries
    yield GaugeMetricFamily(
        "labfleet_notification_channels_failing",
        "Channels whose last delivery ran out of tries.",
        value=s.failing_channels,
    )


def families(s: Snapshot) -> Iterator[Metric]:
    yield from _inventory(s)
    yield from _work(s)
    yield from _operations(s)


class _Once(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        return families(self._snapshot)


def render(snapshot: Snapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Once(snapshot))
    return generate_latest(registry)
