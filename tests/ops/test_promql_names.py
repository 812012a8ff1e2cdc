"""The check tests/ops/test_metrics_honesty.py relies on can fail: a misspelt metric, a label a
metric does not have, a grouping label on none of the metrics are all reported; names that
are there (with a counter's `_total`, a histogram's `_bucket` / `_count`) are not. And what
needs no running service: every rule's annotations, the dashboard's layout."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.ops.promql_names import Exported, PromQLSyntaxError, names_in, problems
from tests.ops.test_metrics_honesty import (
    DASHBOARD,
    RULES,
    dashboard_targets,
    rule_expressions,
)

SCRAPE = """\
# HELP grpc_server_handled_total RPCs handled
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{method="/zoho.broker.v1.TokenBrokerService/GetToken",code="OK"} 3.0
# HELP grpc_server_handling_seconds RPC latency
# TYPE grpc_server_handling_seconds histogram
grpc_server_handling_seconds_bucket{method="/m",le="0.5"} 1.0
grpc_server_handling_seconds_bucket{method="/m",le="+Inf"} 1.0
grpc_server_handling_seconds_count{method="/m"} 1.0
grpc_server_handling_seconds_sum{method="/m"} 0.1
# HELP notifier_keeper_next_expiry_seconds Seconds until the earliest CRM channel expiry
# TYPE notifier_keeper_next_expiry_seconds gauge
notifier_keeper_next_expiry_seconds 0.0
# HELP notifier_keeper_renewals_total CRM channel renewals, by outcome
# TYPE notifier_keeper_renewals_total counter
"""


@pytest.fixture
def exported() -> Exported:
    scraped = Exported()
    scraped.add_scrape(SCRAPE)
    return scraped


def test_names_that_are_exported_pass(exported: Exported) -> None:
    for expr in (
        'sum by (code) (rate(grpc_server_handled_total{code!="OK"}[$__rate_interval]))',
        "histogram_quantile(0.99, sum by (le, method) "
        "(rate(grpc_server_handling_seconds_bucket[5m])))",
        "rate(grpc_server_handling_seconds_sum[5m]) / rate(grpc_server_handling_seconds_count[5m])",
        "min(notifier_keeper_next_expiry_seconds != 0) < 43200",
        'up{job=~"zoho-broker"} == 0',
        "sum(rate(grpc_server_handled_total[5m])) by (instance)",
    ):
        assert problems(expr, exported) == [], expr


def test_a_misspelt_metric_is_caught(exported: Exported) -> None:
    assert problems("sum(rate(grpc_server_handeld_total[5m]))", exported) == [
        "metric 'grpc_server_handeld_total' is not exported"
    ]
    # A histogram's suffixes are accepted, others are not.
    assert problems("grpc_server_handling_seconds_buckets", exported) == [
        "metric 'grpc_server_handling_seconds_buckets' is not exported"
    ]


def test_a_label_the_metric_lacks_is_caught(exported: Exported) -> None:
    assert problems('grpc_server_handled_total{reason="ZOHO_THROTTLED"}', exported) == [
        "label 'reason' is not a label of 'grpc_server_handled_total'"
    ]
    assert problems("sum by (status) (rate(grpc_server_handled_total[5m]))", exported) == [
        "label 'status' (in by/on/...) is on none of ['grpc_server_handled_total']"
    ]


def test_a_family_without_samples_cannot_pass_unchecked(exported: Exported) -> None:
    """Announced but never incremented: its labels are unknown, so the test must say so."""
    assert problems('notifier_keeper_renewals_total{outcome="renewed"}', exported) == [
        "metric 'notifier_keeper_renewals_total' has no sample, so its labels cannot be "
        "checked: the test's traffic must produce one"
    ]


def test_unreadable_expressions_are_reported_not_skipped(exported: Exported) -> None:
    with pytest.raises(PromQLSyntaxError):
        names_in('rate(x{a="b"[5m])')
    assert problems("rate(x{a=}[5m])", exported) != []


def test_every_rule_and_panel_is_read() -> None:
    """The honesty test sees every alert and every panel target, each with a metric."""
    rules, targets = rule_expressions(), dashboard_targets()
    assert len(rules) >= 20 and len(targets) >= 25
    for name, expr in {**rules, **{n: t["expr"] for n, t in targets.items()}}.items():
        assert names_in(expr).metrics, name


def test_every_rule_says_what_it_means_and_what_to_do() -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"]
    for rule in (r for group in rules for r in group["rules"]):
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook"], rule["alert"]


def test_dashboard_panels_do_not_overlap_and_use_its_data_source() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
