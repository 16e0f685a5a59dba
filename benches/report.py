#!/usr/bin/env python3
"""Rewrites the generated part of BENCHMARKS.md from a benches/peers.sh results directory.

    benches/report.py RESULTS_DIR [RESULTS_DIR ...] [--criterion DIR] [--out FILE] [--stdout]
                      [--archive DEST]

Reads RESULTS_DIR/manifest.json, RESULTS_DIR/runs.jsonl and every loadgen report it
lists (`<scenario>.<server>.<rep>.json`, or `.json.gz`), and criterion's estimates from
the last RESULTS_DIR/criterion (or RESULTS_DIR/../criterion, in an archive) that
exists, else target/criterion. With several directories, a scenario found in a later one replaces
that scenario's runs from the earlier ones (re-run one table, keep the rest). Everything
between `<!-- generated:begin -->` and `<!-- generated:end -->` is replaced; the
hand-written text around the markers is kept. With `--archive DEST`, the results are
first copied to DEST (one subdirectory per results directory, criterion's estimates in
DEST/criterion) without loadgen's latency histograms, which the report does not use, and
the report is generated from that copy: small files to commit next to BENCHMARKS.md.
Python 3.11 standard library only.
"""

import argparse
import gzip
import json
import re
import shutil
import shlex
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- generated:begin -->", "<!-- generated:end -->"
SERVERS = ["ringcast", "nchan", "pushpin", "axum", "floor"]
# ringcast on its epoll driver runs the admission scenario beside the peers; the other
# tables compare the five servers above and leave it out (it shows in "Every run").
ALL_SERVERS = ["ringcast", "ringcast-legacy", "ringcast-base", "nchan", "pushpin", "axum", "floor"]
LABEL = {"ringcast": "ringcast", "ringcast-legacy": "ringcast --driver legacy",
         "ringcast-base": "ringcast at --base", "nchan": "Nchan", "pushpin": "Pushpin", "axum": "axum-ref",
         "floor": "floor"}
IDLE = [("idle-1k", "1,000"), ("idle-10k", "10,000"), ("idle-19k", "19,000")]
FANOUT = [
    ("fanout-r100-64B", "100/s", "64 B"),
    ("fanout-r100-1KiB", "100/s", "1 KiB"),
    ("fanout-r1000-64B", "1,000/s", "64 B"),
    ("fanout-r1000-1KiB", "1,000/s", "1 KiB"),
    ("fanout-max-64B", "as fast as possible", "64 B"),
    ("fanout-max-1KiB", "as fast as possible", "1 KiB"),
]
ADMISSION = "saturated-admission"
PROBE_KINDS = ["healthz", "subscribe", "publish"]
LATENCY_PREFIX = "latency-r"
SATURATED = "fanout-r100-64B"
# A server sustains a rate when it accepted at least this share of the target rate's
# publishes and nothing was lost.
SUSTAINED_SHARE = 0.95


# --- loading ---------------------------------------------------------------------


def load_json(path):
    if path.exists():
        return json.loads(path.read_text())
    gz = path.with_name(path.name + ".gz")
    if gz.exists():
        return json.loads(gzip.decompress(gz.read_bytes()))
    return None


def load_runs(results):
    """Every run of runs.jsonl with its loadgen report (None if it wrote none)."""
    runs = []
    for line in (results / "runs.jsonl").read_text().splitlines():
        if line.strip():
            run = json.loads(line)
            run["report"] = load_json(results / run["json"])
            run["dir"] = results
            runs.append(run)
    return runs


def merge_runs(dirs):
    """The runs of every directory; a scenario in a later directory replaces earlier runs."""
    runs = []
    for d in dirs:
        new = load_runs(d)
        again = {r["scenario"] for r in new}
        runs = [r for r in runs if r["scenario"] not in again] + new
    return runs


def load_criterion(directory):
    benches = []
    for meta in sorted(directory.glob("*/*/new/benchmark.json")):
        b = json.loads(meta.read_text())
        est = json.loads((meta.parent / "estimates.json").read_text())
        b["median_ns"] = est["median"]["point_estimate"]
        b["mtime"] = meta.stat().st_mtime
        benches.append(b)
    return benches


# --- numbers ---------------------------------------------------------------------


def get(report, path):
    for key in path.split("."):
        if report is None:
            return None
        report = report.get(key)
    return report


class Cell:
    """The median of one figure over a scenario's runs on one server."""

    def __init__(self, runs, path):
        self.values = [v for r in runs if (v := get(r["report"], path)) is not None]
        self.runs = len(runs)
        self.failed = [r for r in runs if r["rc"] != 0 or not get(r["report"], "ok")]
        self.median = statistics.median(self.values) if self.values else None


def cells(runs, scenario, path):
    by = {}
    for s in SERVERS:
        mine = [r for r in runs if r["scenario"] == scenario and r["server"] == s]
        if mine:
            by[s] = Cell(mine, path)
    return by


def fmt_int(v):
    return f"{v:,.0f}"


def fmt_bytes(v):
    return f"{v:,.0f} B" if v < 10_000 else f"{v / 1000:,.1f} KB"


def fmt_rate(v):
    return f"{v / 1e6:.2f} M/s" if v >= 1e6 else f"{v / 1e3:,.0f} k/s" if v >= 1e4 else f"{v:,.0f}/s"


def fmt_us(v):
    return f"{v:,.0f} µs" if v < 1000 else f"{v / 1000:,.1f} ms" if v < 100_000 else f"{v / 1000:,.0f} ms"


def fmt_f(v):
    return f"{v:.2f}"


def ratio(v, base):
    if v is None or not base:
        return ""
    r = v / base
    return f" (×{r:.2f})" if r < 10 else f" (×{r:.0f})"


def row_cells(by, fmt, with_ratio=True):
    base = by.get("ringcast").median if "ringcast" in by else None
    out = []
    for s in SERVERS:
        if s not in by:
            continue
        c = by[s]
        if c.median is None:
            out.append("—")
            continue
        text = fmt(c.median)
        if with_ratio and s != "ringcast":
            text += ratio(c.median, base)
        if c.failed:
            text += " †"
        out.append(text)
    return out


def header(present, first):
    cols = [LABEL[s] for s in SERVERS if s in present]
    return [f"| {' | '.join(first + cols)} |", "|" + "---|" * (len(first) + len(cols))]


# --- sections --------------------------------------------------------------------


def section_environment(manifests, runs):
    env = next((r["report"]["environment"] for r in runs if r["report"]), {})
    loads = [float(r[k].split()[0]) for r in runs for k in ("loadavg_before", "loadavg_after")]
    starts = {}
    for r in runs:
        starts.setdefault(r["server"], (r["server_cmd"], r["server_start"]))
    mem = env.get("memory_bytes") or 0
    m0 = manifests[0][1]
    used_dirs = [d for d, _ in manifests if any(r["dir"] == d for r in runs)]
    lines = ["### The runs shown" if len(used_dirs) > 1 else "### The run shown", "", "| | |", "|---|---|"]
    for d, m in manifests:
        used = sorted({r["scenario"] for r in runs if r["dir"] == d}, key=scenario_order)
        if not used:
            continue
        what = f" — scenarios {', '.join(used)}" if len(manifests) > 1 else ""
        lines += [
            f"| run | {m['started_utc']} (UTC): `{m['command']}`"
            f"{' (quick mode: small N, short runs)' if m['quick'] else ''}, commit "
            f"`{m['git_commit'][:12]}`{' with uncommitted changes' if m['git_dirty'] else ''}{what} |",
        ]
    lines += [
        f"| CPU | {env.get('cpu_model', '?')}, {env.get('cores', '?')} cores |",
        f"| memory | {mem / 2**30:.0f} GiB |",
        f"| kernel | {env.get('kernel', '?')}, io_uring {'available' if env.get('io_uring') else 'unavailable'} |",
        f"| toolchain | {env.get('rustc', '?')}, monoio {env.get('monoio', '?')} |",
        f"| open files | {env.get('open_file_limit', '?')} per process |",
        f"| Nchan | {m0.get('nginx', '?')}, libnginx-mod-nchan {m0.get('nchan', '?')} |",
    ]
    if any(r["server"] == "pushpin" for r in runs):
        lines.append(f"| Pushpin | pushpin {m0.get('pushpin', '?')}, condure {m0.get('condure', '?')} |")
    lines += [
        f"| load average (1 min) around the runs | {min(loads):.2f} to {max(loads):.2f}, median {statistics.median(loads):.2f} |",
        f"| runs | {len(runs)} ({', '.join(sorted({str(m['reps']) for d, m in manifests if any(r['dir'] == d for r in runs)}))}"
        f" per scenario and server), {sum(1 for r in runs if r['rc'] != 0)} with a failed check |",
        "",
        "Servers, each started fresh for every run and stopped by pid after it:",
        "",
    ]
    for s in ALL_SERVERS:
        if s in starts:
            cmd, start = starts[s]
            lines.append(f"- {LABEL[s]}: `{local(cmd)}` — start line: `{start}`")
    return lines


SCENARIO_ORDER = ["idle-1k", "idle-10k", "idle-19k", "connect-19k"] + [s for s, _, _ in FANOUT] + [ADMISSION]


def scenario_order(name):
    if name in SCENARIO_ORDER:
        return (SCENARIO_ORDER.index(name), 0)
    if name.startswith(LATENCY_PREFIX):
        return (len(SCENARIO_ORDER), float(name[len(LATENCY_PREFIX):]))
    return (len(SCENARIO_ORDER) + 1, 0)


def section_memory(runs):
    present = {r["server"] for r in runs}
    out = ["### Memory per idle subscriber", "",
           "Server RSS once every subscriber is answered minus RSS before the first, over N "
           "(`server.rss_per_connection_bytes`; Nchan: master and workers summed; Pushpin: its "
           "runner, condure, zurl, proxy, handler and the origin summed).", ""]
    out += header(present, ["subscribers"])
    for scenario, label in IDLE:
        by = cells(runs, scenario, "server.rss_per_connection_bytes")
        if by:
            out.append(f"| {label} | {' | '.join(row_cells(by, fmt_bytes))} |")
    return out


def section_connect(runs):
    present = {r["server"] for r in runs}
    rate = cells(runs, "connect-19k", "connections.connect_rate_per_s")
    p99 = cells(runs, "connect-19k", "connections.connect_us.p99")
    if not rate:
        return []
    n = next((get(r["report"], "connections.requested") for r in runs if r["scenario"] == "connect-19k"), "?")
    out = ["### Connection establishment", "",
           f"{fmt_int(n)} subscribers opened as fast as the server answers (256 connects in flight): "
           "connections per second from the first connect to the last answered head, and the "
           "p99 of one connect + response head.", ""]
    out += header(present, [""])
    out.append(f"| connections/s | {' | '.join(row_cells(rate, fmt_int))} |")
    out.append(f"| connect p99 | {' | '.join(row_cells(p99, fmt_us))} |")
    return out


def section_fanout(runs):
    present = {r["server"] for r in runs}
    rows = [(s, rate, size) for s, rate, size in FANOUT if any(r["scenario"] == s for r in runs)]
    if not rows:
        return []
    n = next((get(r["report"], "params.connections") for r in runs if r["scenario"] == rows[0][0]), "?")
    out = ["### Fan-out", "",
           f"{fmt_int(n)} subscribers on 1 topic; one publisher connection publishing at the "
           "target rate (`0`: as fast as answers come). Deliveries/s is events received over "
           "all subscribers from the first publish to the last receive; server CPU is user + "
           "system time of the server's processes over the same window, per million "
           "deliveries. loadgen's own CPU per million deliveries is shown to tell which side "
           "was the bottleneck.", ""]
    tables = [
        ("Deliveries per second", "delivery.events_per_s", fmt_rate),
        ("Server CPU-seconds per million deliveries (lower is better)",
         "server.cpu_s_per_million_deliveries", fmt_f),
        ("Publishes per second achieved", "publish.rate_achieved_per_s", fmt_int),
        ("loadgen CPU-seconds per million deliveries", "loadgen.cpu_s_per_million_deliveries", fmt_f),
    ]
    for title, path, fmt in tables:
        out += [f"**{title}**", ""]
        out += header(present, ["rate", "payload"])
        for scenario, rate, size in rows:
            by = cells(runs, scenario, path)
            out.append(f"| {rate} | {size} | {' | '.join(row_cells(by, fmt))} |")
        out.append("")
    return out[:-1]


def section_admission(runs):
    mine = [r for r in runs if r["scenario"] == ADMISSION]
    if not mine:
        return []
    params = next((r["report"]["params"] for r in mine if r["report"]), {})
    probe = params.get("probe") or {}
    out = ["### Admission under saturation", "",
           f"{fmt_int(params.get('connections', 0))} subscribers on 1 topic, "
           f"{fmt_int(get(params, 'publish.payload') or 0)}-byte payloads published as fast as "
           f"answered for {fmt_int((params.get('duration_ms') or 0) / 1000)} s (`{ADMISSION}`). "
           f"Meanwhile, every {probe.get('interval_ms', '?')} ms from the first connect to the end "
           "of the drain, loadgen's prober opened a new connection each for a health request "
           f"(`GET {probe.get('healthz_path', '/healthz')}`; a 404 from a server without that path "
           "counts as answered), a subscribe (answered by its response head) and a publish, and "
           "timed each from the connect to its answer. A probe past its timeout "
           f"({fmt_int((probe.get('timeout_ms') or 0) / 1000)} s) fails and counts as the "
           "timeout. Cells: medians over runs; failures name their kinds.", "",
           "| server | probe | n | failures | p50 | p99 | max |", "|---|---|---|---|---|---|---|"]
    for s in ALL_SERVERS:
        theirs = [r for r in mine if r["server"] == s]
        if not theirs:
            continue
        for kind in PROBE_KINDS:
            def m(field, fmt):
                v = Cell(theirs, f"probe.{kind}.{field}").median
                return fmt(v) if v is not None else "—"
            kinds = sorted({k for r in theirs for k in (get(r["report"], f"probe.{kind}.failure_kinds") or {})})
            failures = m("failures", fmt_int) + (f" ({', '.join(kinds)})" if kinds else "")
            out.append(f"| {LABEL[s]} | {kind} | {m('n', fmt_int)} | {failures} | "
                       f"{m('p50_ms', fmt_ms)} | {m('p99_ms', fmt_ms)} | {m('max_ms', fmt_ms)} |")
    return out


def fmt_ms(v):
    return fmt_us(v * 1000)


def latency_rates(runs):
    """The latency-rN scenarios present, by rate."""
    names = {r["scenario"] for r in runs if r["scenario"].startswith(LATENCY_PREFIX)}
    return sorted(names, key=lambda n: float(n[len(LATENCY_PREFIX):]))


def sustained(runs, scenario, server):
    mine = [r for r in runs if r["scenario"] == scenario and r["server"] == server]
    target = float(scenario[len(LATENCY_PREFIX):])
    achieved = Cell(mine, "publish.rate_achieved_per_s").median
    lost = Cell(mine, "delivery.lost").values
    return bool(mine) and achieved is not None and achieved >= SUSTAINED_SHARE * target and not any(lost)


def sustainable(runs):
    """The highest latency-rN that every server sustained, and whether one did."""
    rates = latency_rates(runs)
    servers = {r["server"] for r in runs if r["server"] in SERVERS}
    ok = [s for s in rates if all(sustained(runs, s, v) for v in servers)]
    if ok:
        return ok[-1], True
    return (rates[0], False) if rates else (None, False)


def section_latency(runs):
    present = {r["server"] for r in runs}
    chosen, ok = sustainable(runs)
    out = ["### Publish-to-receive latency", ""]
    rates = latency_rates(runs)
    if rates:
        out += [f"Rates tried: a server sustains a rate when it accepted at least "
                f"{SUSTAINED_SHARE:.0%} of the target's publishes and lost nothing (loadgen's "
                "publisher sends one request at a time per topic, so a server that answers "
                "publishes slowly caps the rate itself). Cells: publishes/s achieved, latency p99.", ""]
        out += header(present, ["target rate"])
        for scen in rates:
            ach = cells(runs, scen, "publish.rate_achieved_per_s")
            p99 = cells(runs, scen, "latency_us.p99")
            row = []
            for s in SERVERS:
                if s in ach:
                    a, q = ach[s].median, p99[s].median
                    mark = "" if sustained(runs, scen, s) else " ✗"
                    row.append(f"{a:.1f}/s, {fmt_us(q) if q is not None else '—'}{mark}" if a is not None else "—")
            out.append(f"| {scen[len(LATENCY_PREFIX):]}/s | {' | '.join(row)} |")
        out += ["", "✗: not sustained.", ""]
    for scenario, what in [(chosen, "At the highest rate every server sustains" if ok else
                            "At the lowest rate tried (no rate tried was sustained by every server)"),
                           (SATURATED, "At saturation")]:
        mine = [r for r in runs if r["scenario"] == scenario]
        if not mine:
            continue
        params = mine[0]["report"]["params"] if mine[0]["report"] else {}
        out += [f"**{what}**: {fmt_int(params.get('connections', 0))} subscribers, 1 topic, "
                f"target {fmt_int(get(params, 'publish.rate') or 0)} events/s, "
                f"{fmt_int(get(params, 'publish.payload') or 0)}-byte payloads "
                f"({fmt_int((params.get('duration_ms') or 0) / 1000)} s; `{scenario}`).", ""]
        out += header(present, [""])
        for q in ("p50", "p99", "p999"):
            by = cells(runs, scenario, f"latency_us.{q}")
            out.append(f"| {q.replace('p999', 'p99.9')} | {' | '.join(row_cells(by, fmt_us))} |")
        by = cells(runs, scenario, "publish.rate_achieved_per_s")
        out.append(f"| publishes/s achieved | {' | '.join(row_cells(by, lambda v: f'{v:.1f}'))} |")
        by = cells(runs, scenario, "publish.response_us.p50")
        out.append(f"| publish answer p50 | {' | '.join(row_cells(by, fmt_us))} |")
        by = cells(runs, scenario, "server.cpu_s_per_million_deliveries")
        out.append(f"| server CPU-s per million deliveries | {' | '.join(row_cells(by, fmt_f))} |")
        out.append("")
    return out[:-1]


def med(runs, scenario, server, path):
    mine = [r for r in runs if r["scenario"] == scenario and r["server"] == server]
    return Cell(mine, path).median if mine else None


def section_targets(runs):
    def verdict(ok):
        return "n/a" if ok is None else ("met" if ok else "**not met**")

    out = ["### The issue's targets", "", "| target | measured | verdict |", "|---|---|---|"]
    rss = med(runs, "idle-19k", "ringcast", "server.rss_per_connection_bytes")
    n = next((get(r["report"], "params.connections") for r in runs if r["scenario"] == "idle-19k"), None)
    out.append(f"| ringcast under 512 B per idle connection ({fmt_int(n) if n else '?'} subscribers) | "
               f"{fmt_int(rss) + ' B' if rss is not None else '—'} | {verdict(None if rss is None else rss < 512)} |")
    chosen, was_sustained = sustainable(runs)
    at = f" (`{chosen}`{'' if was_sustained else ', not sustained by every server'})" if chosen else ""
    rc = med(runs, chosen, "ringcast", "server.cpu_s_per_million_deliveries")
    fl = med(runs, chosen, "floor", "server.cpu_s_per_million_deliveries")
    ok = None if rc is None or fl is None else rc <= 1.15 * fl
    out.append(f"| server CPU per delivery at the sustainable rate{at} within 15% of the floor | "
               + (f"ringcast {rc:.2f}, floor {fl:.2f} CPU-s per million (×{rc / fl:.2f})"
                  if ok is not None else "—") + f" | {verdict(ok)} |")
    for scenario, rate, size in FANOUT:
        rc = med(runs, scenario, "ringcast", "server.cpu_s_per_million_deliveries")
        ax = med(runs, scenario, "axum", "server.cpu_s_per_million_deliveries")
        if rc and ax:
            out.append(f"| at saturation ({rate}, {size}) at least 2× axum's deliveries per server "
                       f"CPU-second | ringcast {1e6 / rc / 1e3:,.0f} k, axum-ref {1e6 / ax / 1e3:,.0f} k "
                       f"per CPU-s (×{ax / rc:.2f}) | {verdict(ax / rc >= 2)} |")
    rc = med(runs, chosen, "ringcast", "latency_us.p99")
    ax = med(runs, chosen, "axum", "latency_us.p99")
    ok = None if rc is None or ax is None else rc <= ax / 2
    out.append(f"| latency p99 at the sustainable rate{at} at most half axum's | "
               + (f"ringcast {fmt_us(rc)}, axum-ref {fmt_us(ax)} (×{rc / ax:.2f})" if ok is not None else "—")
               + f" | {verdict(ok)} |")
    return out


def section_failures(runs):
    bad = [r for r in runs if r["rc"] != 0 or not get(r["report"], "ok")]
    if not bad:
        return ["Every run passed loadgen's checks (nothing lost, duplicated or dropped)."]
    out = ["† marks a median that includes runs where a loadgen check failed:", ""]
    for r in bad:
        checks = [c for c in get(r["report"], "checks") or [] if not c["ok"]]
        why = "; ".join(f"{c['name']}: {c['detail']}" for c in checks) or f"loadgen exit {r['rc']}, no report"
        out.append(f"- {r['scenario']} on {LABEL[r['server']]} (rep {r['rep']}): {why}")
    return out


def section_criterion(benches, criterion_dir):
    if not benches:
        return []
    load = criterion_dir.parent / "criterion.loadavg"
    loads = load.read_text().splitlines() if load.exists() else []
    when = f" Load average before: {loads[0]}; after: {loads[1]}." if len(loads) > 1 else ""
    out = ["### Micro-benchmarks (criterion)", "",
           f"`cargo bench` (criterion 0.5; median of its samples; from `{shown_path(criterion_dir)}`).{when} "
           "Each group holds ringcast's code and its baseline; ×: time relative to "
           "ringcast's entry in the group. fanout's per-subscriber cost is the time over "
           "the subscriber count.", "",
           "| group | function | time | per element | × |", "|---|---|---|---|---|"]
    groups = {}
    for b in benches:
        groups.setdefault(b["group_id"], []).append(b)
    for gid in sorted(groups, key=lambda g: (g.split("/")[0], [int(x) if x.isdigit() else x
                                                             for x in g.replace("_", " ").split()])):
        entries = groups[gid]
        ours = next((b for b in entries if b["function_id"].startswith(("ringcast", "wheel"))), entries[0])
        for b in sorted(entries, key=lambda b: b is not ours):
            t = b["median_ns"]
            tp = b.get("throughput") or {}
            per = ""
            if "Elements" in tp:
                per = f"{t / tp['Elements']:.2f} ns each"
            elif "Bytes" in tp:
                per = f"{tp['Bytes'] / t:.2f} GB/s"
            time = f"{t:,.1f} ns" if t < 10_000 else f"{t / 1000:,.1f} µs" if t < 10_000_000 else f"{t / 1e6:,.1f} ms"
            out.append(f"| {gid} | {b['function_id']} | {time} | {per} | {t / ours['median_ns']:.2f} |")
    return out


def section_reproduce(manifest, runs, results):
    scen = list(dict.fromkeys(r["scenario"] for r in runs))
    out = ["### Reproduce", "",
           "Everything above, one command (builds, installs Nchan and Pushpin if missing, runs the "
           "criterion benches and every scenario on every server, then rewrites this section):",
           "", "```sh", "benches/peers.sh" + (" --quick" if manifest["quick"] else ""), "```", "",
           "One table at a time (then `benches/report.py target/bench-results/<timestamp>`):", "",
           "```sh",
           "benches/peers.sh --only idle-1k,idle-10k,idle-19k --no-criterion   # memory",
           "benches/peers.sh --only connect-19k --no-criterion                  # establishment",
           "benches/peers.sh --only " + ",".join(s for s, _, _ in FANOUT) + " --no-criterion",
           f"benches/peers.sh --only {ADMISSION} --no-criterion   # admission, also on ringcast --driver legacy",
           "benches/peers.sh --only latency-r2,latency-r5,latency-r10 --no-criterion   # latency",
           "cargo bench --bench parse --bench frame --bench fanout --bench inbox --bench wheel",
           "```", "",
           "<details><summary>The exact loadgen command of every scenario and server</summary>", "",
           "Server pids and the JSON path differ per run; `$PIDS` stands for "
           "`--server-pid` of each server process (Nchan: master and workers; Pushpin: "
           "its processes and the origin).", "", "```sh"]
    seen = set()
    for r in runs:
        key = (r["scenario"], r["server"])
        if key in seen:
            continue
        seen.add(key)
        args = shlex.split(r["loadgen_cmd"])
        clean, skip = [], False
        for a in args:
            if skip:
                skip = False
                continue
            if a in ("--server-pid", "--json"):
                skip = True
                if a == "--server-pid" and "$PIDS" not in clean:
                    clean.append("$PIDS")
                continue
            clean.append(a)
        out.append(f"# {r['scenario']} on {LABEL[r['server']]} (server: {local(r['server_cmd'])})")
        out.append(" ".join(a if a == "$PIDS" else shlex.quote(a) for a in clean)
                   + f" --json {r['scenario']}.{r['server']}.json")
    out += ["```", "", "</details>"]
    if scen:
        out += ["", f"Raw reports: `{results}` (loadgen JSON per run, `runs.jsonl`, `manifest.json`)."]
    return out


def section_all_runs(runs):
    out = ["<details><summary>Every run</summary>", "",
           "| scenario | server | rep | load before | ok | conns | conn/s | RSS/conn | publish/s | deliveries/s | server CPU-s/M | loadgen CPU-s/M | p50 | p99 | lost |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        rep = r["report"]

        def g(path, fmt):
            v = get(rep, path)
            return fmt(v) if v is not None else "—"
        out.append(" | ".join([
            f"| {r['scenario']}", LABEL[r["server"]], str(r["rep"]), r["loadavg_before"].split()[0],
            "yes" if get(rep, "ok") else f"**no** (exit {r['rc']})",
            g("connections.established", fmt_int), g("connections.connect_rate_per_s", fmt_int),
            g("server.rss_per_connection_bytes", fmt_int), g("publish.rate_achieved_per_s", fmt_int),
            g("delivery.events_per_s", fmt_int), g("server.cpu_s_per_million_deliveries", fmt_f),
            g("loadgen.cpu_s_per_million_deliveries", fmt_f), g("latency_us.p50", fmt_us),
            g("latency_us.p99", fmt_us), g("delivery.lost", fmt_int)]) + " |")
    out += ["", "</details>"]
    return out


def generate(dirs, criterion_dir):
    manifests = [(d, json.loads((d / "manifest.json").read_text())) for d in dirs]
    runs = [r for r in merge_runs(dirs) if r["server"] in ALL_SERVERS]
    if not runs:
        sys.exit("report.py: no runs recorded in " + ", ".join(str(d) for d in dirs))
    runs.sort(key=lambda r: (scenario_order(r["scenario"]), r["rep"], ALL_SERVERS.index(r["server"])))
    shown_results = ", ".join(shown_path(d) for d in dirs)
    benches = load_criterion(criterion_dir) if criterion_dir.is_dir() else []
    parts = [
        [f"<!-- generated by benches/report.py from {shown_results}; edit the script, not this text -->",
         "", "## Results"],
        section_environment(manifests, runs), section_targets(runs), section_memory(runs),
        section_connect(runs), section_fanout(runs), section_admission(runs), section_latency(runs),
        section_failures(runs), section_criterion(benches, criterion_dir),
        section_reproduce(manifests[-1][1], runs, shown_results), section_all_runs(runs),
    ]
    lines = []
    for p in parts:
        if p:
            lines += p + [""]
    return "\n".join(lines).rstrip() + "\n"


def local(command):
    """A command line with this checkout's path and the run's results directory taken out."""
    command = command.replace(str(ROOT) + "/", "")
    return re.sub(r"((nchan|pushpin)\.sh start \d+) \S+", r"\1 $RESULTS/\2", command)


def shown_path(path):
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def archive(dirs, criterion_dir, dest):
    """Copies what the report reads to dest; returns the copied results dirs and criterion dir."""
    copied = []
    for d in dirs:
        to = dest / d.name
        to.mkdir(parents=True, exist_ok=True)
        for name in ("manifest.json", "runs.jsonl"):
            shutil.copy2(d / name, to / name)
        for run in load_runs(d):
            if run["report"] is not None:
                report = dict(run["report"])
                report.pop("latency_hist_us", None)
                (to / run["json"]).write_text(json.dumps(report, indent=1) + "\n")
        copied.append(to)
    crit = dest / "criterion"
    if criterion_dir.is_dir():
        for f in criterion_dir.glob("*/*/new/*.json"):
            if f.name in ("benchmark.json", "estimates.json"):
                target = crit / f.relative_to(criterion_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)
        load = criterion_dir.parent / "criterion.loadavg"
        if load.exists():
            shutil.copy2(load, dest / "criterion.loadavg")
    return copied, crit


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, nargs="+", help="benches/peers.sh results directories")
    ap.add_argument("--criterion", type=Path, help="criterion's output (default: RESULTS/criterion, else target/criterion)")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--stdout", action="store_true", help="print the generated section instead")
    ap.add_argument("--archive", type=Path, help="copy the results (without histograms) here first")
    args = ap.parse_args()
    dirs = [d.resolve() for d in args.results]
    for d in dirs:
        if not (d / "runs.jsonl").exists():
            sys.exit(f"report.py: {d}/runs.jsonl not found (is it a peers.sh results directory?)")
    # A peers.sh directory holds its criterion/; an archive keeps one next to its runs.
    found = (c for d in reversed(dirs) for c in (d / "criterion", d.parent / "criterion") if c.is_dir())
    crit = args.criterion or next(found, ROOT / "target/criterion")
    if args.archive:
        dirs, crit = archive(dirs, crit, args.archive.resolve())
    text = generate(dirs, crit)
    if args.stdout:
        print(text)
        return
    doc = args.out.read_text()
    if BEGIN not in doc or END not in doc:
        sys.exit(f"report.py: {args.out} lacks the {BEGIN} / {END} markers")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    args.out.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")
    print(f"report.py: rewrote the generated section of {args.out}")


if __name__ == "__main__":
    main()
