"""The Prometheus text exposition of the signaler's metrics."""

from __future__ import annotations

from weron.prometheus import Family, render
from weron.signaler.metrics import Metrics


def test_families_render_with_help_type_and_labels() -> None:
    text = render(
        [
            Family("weron_joins_total", "counter", "Admitted.", (({}, 3),)),
            Family(
                "weron_joins_rejected_total",
                "counter",
                "Refused.",
                (({"status": "401"}, 2), ({"status": "503"}, 1)),
            ),
            Family("weron_ratio", "gauge", "A float.", (({}, 0.25),)),
            Family("weron_empty_total", "counter", "No samples yet.", ()),
        ]
    ).decode()
    assert text == (
        "# HELP weron_joins_total Admitted.\n"
        "# TYPE weron_joins_total counter\n"
        "weron_joins_total 3\n"
        "# HELP weron_joins_rejected_total Refused.\n"
        "# TYPE weron_joins_rejected_total counter\n"
        'weron_joins_rejected_total{status="401"} 2\n'
        'weron_joins_rejected_total{status="503"} 1\n'
        "# HELP weron_ratio A float.\n"
        "# TYPE weron_ratio gauge\n"
        "weron_ratio 0.25\n"
        "# HELP weron_empty_total No samples yet.\n"
        "# TYPE weron_empty_total counter\n"
    )


def test_label_values_are_escaped() -> None:
    text = render([Family("m", "gauge", "h", (({"k": 'a"b\\c'}, 1),))]).decode()
    assert 'm{k="a\\"b\\\\c"} 1\n' in text


def test_rejections_are_counted_by_status() -> None:
    metrics = Metrics()
    for status in (401, 401, 503):
        metrics.reject(status)
    assert metrics.joins_rejected == {401: 2, 503: 1}
