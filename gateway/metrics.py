"""Prometheus metrics. Labels are channels, topics and outcomes — never a person."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

INTAKE = Counter(
    "aduan_intake_messages",
    "Messages taken in, by channel and how they were kept.",
    ["channel", "result"],
    registry=REGISTRY,
)
ACK_SECONDS = Histogram(
    "aduan_ack_seconds",
    "Time from request to acknowledgement, by channel.",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
REJECTED = Counter(
    "aduan_intake_rejected",
    "Requests refused with a 4xx, by route and status.",
    ["route", "status"],
    registry=REGISTRY,
)
SPOOL_DEPTH = Gauge(
    "aduan_spool_depth", "Complaints waiting in the local spool for Redis.", registry=REGISTRY
)
QUEUE_DEPTH = Gauge("aduan_queue_depth", "Jobs waiting in the queue.", registry=REGISTRY)
FAILED_JOBS = Gauge("aduan_failed_jobs", "Jobs that failed after their retries.", registry=REGISTRY)
