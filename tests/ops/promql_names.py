"""The metric names and label names a PromQL expression relies on, and a check of them
against what the services really export.

Not a PromQL parser: a tokenizer and a walk over its tokens, enough for the expressions
deploy/prometheus/ and deploy/grafana/ hold (selectors with matchers, range durations,
functions, aggregations with by/without, vector matching with on/ignoring/group_*).
Grafana's variables (`$__rate_interval`, `${datasource}`) are skipped as tokens of their own.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<variable>\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<matchop>=~|!~|!=|==|<=|>=|=)
  | (?P<punct>[{}()\[\],])
  | (?P<op>[-+*/%^<>@])
    """,
    re.VERBOSE,
)

# Words that are never metric names where they stand as bare identifiers.
KEYWORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan", "atan2",
})
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})


class PromQLSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Matcher:
    """`label op "value"` inside the braces of `metric` ("" when the selector has no name)."""

    metric: str
    label: str
    op: str
    value: str


@dataclass
class Names:
    metrics: set[str] = field(default_factory=set)
    matchers: list[Matcher] = field(default_factory=list)
    # Labels named in by/without/on/ignoring/group_left/group_right lists.
    grouping: set[str] = field(default_factory=set)


def tokens(expr: str) -> Iterator[tuple[str, str]]:
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise PromQLSyntaxError(f"cannot read {expr[position:position + 20]!r} in {expr!r}")
        position = match.end()
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            yield kind, match.group()


def names_in(expr: str) -> Names:
    found = Names()
    toks = list(tokens(expr))
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        after = toks[i + 1][1] if i + 1 < len(toks) else ""
        if text == "[":  # a range or subquery duration: no names inside
            i = _skip_to(toks, i, "]")
        elif kind == "ident" and text in _LABEL_LISTS:
            if after == "(":
                end = _skip_to(toks, i + 1, ")")
                found.grouping.update(t for k, t in toks[i + 2:end] if k == "ident")
                i = end
        elif kind == "ident" and text not in KEYWORDS and after not in ("(", "by", "without"):
            # `sum by (x) (...)`: an aggregation, as `sum(...)` is.
            found.metrics.add(text)
            if after == "{":
                i = _matchers(toks, i + 1, text, found)
        elif text == "{":
            i = _matchers(toks, i, "", found)
        i += 1
    return found


def _skip_to(toks: list[tuple[str, str]], start: int, closing: str) -> int:
    for j in range(start, len(toks)):
        if toks[j][1] == closing:
            return j
    raise PromQLSyntaxError(f"no {closing!r} after token {start}")


def _matchers(toks: list[tuple[str, str]], brace: int, metric: str, found: Names) -> int:
    """Reads `{a="x", b=~"y"}` from the brace at `brace`; returns the closing brace's index."""
    end = _skip_to(toks, brace, "}")
    inner = [t for t in toks[brace + 1:end] if t[1] != ","]
    if len(inner) % 3:
        raise PromQLSyntaxError(f"unreadable matchers: {' '.join(t for _, t in inner)}")
    for j in range(0, len(inner), 3):
        (label_kind, label), (_, op), (value_kind, value) = inner[j:j + 3]
        if label_kind != "ident" or value_kind != "string" or op not in ("=", "!=", "=~", "!~"):
            raise PromQLSyntaxError(f"unreadable matcher {label} {op} {value}")
        if label == "__name__" and op == "=":
            found.metrics.add(value[1:-1])
        found.matchers.append(Matcher(metric, label, op, value[1:-1]))
    return end


@dataclass
class Exported:
    """What a scrape showed: every sample name with the label names seen on it, and the
    families announced by `# TYPE` (a labelled family with no sample yet has only that)."""

    labels: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    values: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    announced: set[str] = field(default_factory=set)
    samples: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def add_scrape(self, text: str) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(text):
            self.announced.add(family.name)
            for sample in family.samples:
                self.samples.append((sample.name, sample.labels))
                self.labels[sample.name].update(sample.labels)
                for label, value in sample.labels.items():
                    self.values[(sample.name, label)].add(value)

    def has_metric(self, name: str) -> bool:
        if name in self.labels:
            return True
        # prometheus_client names a counter's family without `_total`, a histogram's
        # without `_bucket` / `_sum` / `_count`.
        for suffix in ("_total", "_bucket", "_sum", "_count", "_created"):
            if name.endswith(suffix) and name.removesuffix(suffix) in self.announced:
                return True
        return name in self.announced


# Series and labels Prometheus adds itself: `up` per target, and the target's labels.
PROMETHEUS_SERIES = {"up": {"job", "instance"}}
TARGET_LABELS = frozenset({"job", "instance"})


def problems(expr: str, exported: Exported) -> list[str]:
    """What `expr` names that the scrape did not show; empty when it is all there."""
    try:
        found = names_in(expr)
    except PromQLSyntaxError as bad:
        return [str(bad)]
    wrong: list[str] = []
    known_labels: set[str] = set(TARGET_LABELS)
    reported: set[str] = set()
    for metric in sorted(found.metrics):
        if metric in PROMETHEUS_SERIES:
            known_labels |= PROMETHEUS_SERIES[metric]
            continue
        if not exported.has_metric(metric):
            wrong.append(f"metric {metric!r} is not exported")
        elif metric not in exported.labels:
            wrong.append(f"metric {metric!r} has no sample, so its labels cannot be checked: "
                         "the test's traffic must produce one")
        else:
            known_labels |= exported.labels[metric]
            continue
        reported.add(metric)
    if reported:  # its labels are unknown: saying so once is enough
        return wrong
    for matcher in found.matchers:
        labels = (PROMETHEUS_SERIES.get(matcher.metric) or exported.labels.get(matcher.metric)
                  or known_labels)
        if matcher.label not in labels | TARGET_LABELS | {"__name__"}:
            wrong.append(f"label {matcher.label!r} is not a label of {matcher.metric!r}")
    for label in sorted(found.grouping - known_labels):
        wrong.append(f"label {label!r} (in by/on/...) is on none of {sorted(found.metrics)}")
    return wrong


def exact_values(expr: str) -> Iterable[Matcher]:
    """The `label="value"` matchers of `expr` (values the services must be able to emit)."""
    return [m for m in names_in(expr).matchers if m.op in ("=", "!=")]
