#!/usr/bin/env python3
"""Checks the Grafana dashboards of deploy/grafana/dashboards (run by
`scripts/test.sh observability`; python3's standard library only).

Every dashboard JSON parses and has a uid of its own; every panel, query
and template variable names the data source provisioned in
deploy/grafana/provisioning/datasources/prometheus.yml by its uid; every
`$variable` an expression uses is defined; and every series an expression
or a variable query names exists: a metric family the Rust processes write
(a string literal "inventiv_..." in a file of inventiv-*/src that renders
metrics), with `_bucket`, `_sum` or `_count` for a histogram family, a
recording rule of deploy/prometheus/alerts.yml, or one of the series
Prometheus adds to every scrape (`up`, ...).

    scripts/check-dashboards.py [--dashboards DIR] [--rules-out FILE]

Exits 1 and names each problem when there is one. --rules-out writes every
expression, Grafana's variables replaced by plain values, as a recording
rule of FILE, so that `promtool check rules FILE` parses them.
"""

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The series Prometheus writes for each target itself.
SCRAPE_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "atan2", "inf", "nan", "Inf", "NaN",
}
# A metric family's name as the Rust code writes it.
RUST_NAME = re.compile(r'"(inventiv_[a-z0-9_]+)"')
RUST_KIND = re.compile(r"\bKind::(Counter|Gauge|Histogram)\b")


def rust_families():
    """{family: kind} of the metric families the Rust processes write.

    A file renders metrics when it names `Kind::`; a name's kind is the first
    `Kind::...` within the two statements after its first occurrence
    (`t.family("x", Kind::Gauge, ..)`, `let name = "x"; t.family(name,
    Kind::Histogram, ..)`, or an array of families rendered by the loop
    after it)."""
    families = {}
    for path in sorted(ROOT.glob("inventiv-*/src/**/*.rs")):
        text = path.read_text(encoding="utf-8")
        if not RUST_KIND.search(text):
            continue
        for m in RUST_NAME.finditer(text):
            name = m.group(1)
            if name in families:
                continue
            rest = text[m.end():]
            end = -1
            for _ in range(2):
                end = rest.find(";", end + 1)
                if end < 0:
                    end = len(rest)
                    break
            kind = RUST_KIND.search(rest[:end])
            families[name] = kind.group(1).lower() if kind else "unknown"
    return families


def recording_rules():
    text = (ROOT / "deploy/prometheus/alerts.yml").read_text(encoding="utf-8")
    return set(re.findall(r"^\s*(?:-\s*)?record:\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*$", text, re.M))


def provisioned_uid():
    path = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml"
    uids = re.findall(r"^\s*uid:\s*['\"]?([A-Za-z0-9_-]+)['\"]?\s*$", path.read_text(encoding="utf-8"), re.M)
    if len(uids) != 1:
        sys.exit(f"{path}: expected one data source uid, found {uids}")
    return uids[0]


STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
NUMBERS = re.compile(r"(?<![A-Za-z0-9_:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?)")
VARIABLES = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def variables_used(expr):
    return {a or b for a, b in VARIABLES.findall(expr)}


def series_named(expr):
    """The metric names a PromQL expression selects."""
    e = STRINGS.sub(" ", expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = LABEL_LISTS.sub(" ", e)
    e = VARIABLES.sub(" ", e)
    e = NUMBERS.sub(" ", e)
    names = []
    for m in IDENT.finditer(e):
        word = m.group(0)
        if word in KEYWORDS or re.match(r"\s*\(", e[m.end():]):
            continue
        names.append(word)
    return names


def variable_query_series(query):
    """The series a template variable's query names (Grafana's functions)."""
    m = re.fullmatch(r"\s*label_values\((.*)\)\s*", query, re.S)
    if m:
        inner = m.group(1)
        # label_values(label) names no series; label_values(expr, label) does.
        depth, split = 0, None
        for i, ch in enumerate(inner):
            depth += ch in "({["
            depth -= ch in ")}]"
            if ch == "," and depth == 0:
                split = i
        return series_named(inner[:split]) if split is not None else []
    m = re.fullmatch(r"\s*query_result\((.*)\)\s*", query, re.S)
    if m:
        return series_named(m.group(1))
    if re.fullmatch(r"\s*(label_names|metrics)\(.*\)\s*", query, re.S):
        return []
    return series_named(query)


def check_series(name, families, rules):
    if name in rules or name in SCRAPE_SERIES:
        return None
    kind = families.get(name)
    if kind == "histogram":
        return f"'{name}' is a histogram: select {name}_bucket, _sum or _count"
    if kind is not None:
        return None
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and families.get(base) == "histogram":
            return None
    return f"unknown metric '{name}' (not written by inventiv-*/src, not a recording rule of deploy/prometheus/alerts.yml)"


def plain(expr):
    """The expression with Grafana's variables replaced: intervals by 5m,
    the others (used in label matchers) by a regular expression."""
    e = re.sub(r"\$(?:\{__(?:rate_interval|interval|range)\}|__(?:rate_interval|interval|range)\b)", "5m", expr)
    return VARIABLES.sub(".*", e)


def write_rules(path, exprs):
    """A rules file with one recording rule per expression (JSON is YAML)."""
    rules = [{"record": f"grafana_dashboard_expression_{i}", "expr": plain(e)} for i, e in enumerate(exprs)]
    path.write_text(json.dumps({"groups": [{"name": "dashboards", "rules": rules}]}, indent=1), encoding="utf-8")


def panels_of(dashboard):
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dashboards", type=Path, default=ROOT / "deploy/grafana/dashboards")
    ap.add_argument("--rules-out", type=Path)
    args = ap.parse_args()

    families, rules, uid = rust_families(), recording_rules(), provisioned_uid()
    if not any(k == "histogram" for k in families.values()):
        sys.exit("no histogram family found in inventiv-*/src: the reading of the Rust sources is broken")
    problems, uids = [], {}
    files = sorted(args.dashboards.glob("*.json"))
    if not files:
        sys.exit(f"no dashboard in {args.dashboards}")
    exprs, panels = [], 0
    for path in files:
        where = path.name
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            problems.append(f"{where}: not JSON: {e}")
            continue
        duid = d.get("uid")
        if not isinstance(duid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", duid):
            problems.append(f"{where}: uid {duid!r} missing or not 1-40 letters, digits, - or _")
        elif duid in uids:
            problems.append(f"{where}: uid '{duid}' is also the uid of {uids[duid]}")
        else:
            uids[duid] = where
        if not d.get("title"):
            problems.append(f"{where}: no title")
        defined = set()
        for v in d.get("templating", {}).get("list", []):
            name = v.get("name", "?")
            defined.add(name)
            if v.get("type") != "query":
                continue
            if (v.get("datasource") or {}).get("uid") != uid:
                problems.append(f"{where}: variable '{name}': data source is not uid '{uid}'")
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or "")
            for s in variable_query_series(q):
                err = check_series(s, families, rules)
                if err:
                    problems.append(f"{where}: variable '{name}': {err}")
        for p in panels_of(d):
            if p.get("type") in ("row", "text"):
                continue
            panels += 1
            title = f"{where}: panel '{p.get('title', '?')}' (id {p.get('id')})"
            if (p.get("datasource") or {}).get("uid") != uid:
                problems.append(f"{title}: data source is not uid '{uid}'")
            targets = p.get("targets") or []
            if not targets:
                problems.append(f"{title}: no query")
            for t in targets:
                ref = t.get("refId", "?")
                if "datasource" in t and (t["datasource"] or {}).get("uid") not in (uid, "-- Mixed --"):
                    problems.append(f"{title} query {ref}: data source is not uid '{uid}'")
                expr = t.get("expr", "")
                if not expr.strip():
                    problems.append(f"{title} query {ref}: empty expression")
                    continue
                exprs.append(expr)
                for var in sorted(variables_used(expr)):
                    if not var.startswith("__") and var not in defined:
                        problems.append(f"{title} query {ref}: variable '${var}' is not defined")
                for s in series_named(expr):
                    err = check_series(s, families, rules)
                    if err:
                        problems.append(f"{title} query {ref}: {err}")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {args.dashboards}", file=sys.stderr)
        return 1
    if args.rules_out:
        write_rules(args.rules_out, exprs)
    print(f"{len(files)} dashboards, {panels} panels, {len(exprs)} expressions: data source '{uid}', "
          f"every series exists ({len(families)} Rust families, {len(rules)} recording rules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
