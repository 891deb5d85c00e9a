"""The Markdown report of bench/peer/run.sh, from its JSON lines.

Usage: python3 report.py RESULTS.jsonl CHECK.jsonl META.json
RESULTS.jsonl: one load.mjs line per run, with cpu_ms_per_request added by run.sh. CHECK.jsonl:
the lines of `queries.mjs check` (for the response sizes). META.json: what run.sh knows about
the run. Each file is searched for its own kind of line, and run.sh prints all three kinds on
stdout, so a saved stdout can be reported again: python3 report.py OUT OUT OUT.
"""

import datetime
import json
import os
import platform
import statistics
import sys


def main() -> None:
    results_path, check_path, meta_path = sys.argv[1:4]
    rows = [json.loads(line) for line in open(results_path) if line.startswith('{"label"')]
    checks = [json.loads(line) for line in open(check_path) if line.startswith('{"server"')]
    meta = next(json.loads(line) for line in open(meta_path) if line.startswith('{"clients"'))
    size = {c["read"]: c["response_bytes"] for c in checks}
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )

    def runs(label):
        return [r for r in rows if r["label"] == label]

    def med(rs, key):
        return statistics.median(r[key] for r in rs)

    def med_cpu(rs, part):
        return statistics.median(r["cpu_ms_per_request"][part] for r in rs)

    names = {"twh": "TWH", "pg5": "PostGraphile 5", "pg4": "PostGraphile 4"}
    what = {
        ("twh", "page"): "`stockLevels(first: 50)`: sku, locationCode, available, onHand, version",
        ("twh", "lookup"): "`stockLevel(sku, locationCode)`: the same 5 fields",
        ("levels", "page"): "`allStockLevels(first: 50, condition: {tenantId})`: itemId, locationId and the 7 level columns onHand sums",
        ("levels", "lookup"): "`stockLevelByTenantIdAndItemIdAndLocationId`: the same 9 columns",
        ("matched", "page"): "`allStockLevels(first: 50, condition: {tenantId})`: sku and code through virtual FKs, available, onHand (computed column), version",
        ("matched", "lookup"): "`stockLevelByTenantIdAndItemIdAndLocationId`: TWH's 5 fields, as in the page",
    }

    print()
    print(f"### {meta.get('date', datetime.date.today())}: {os.cpu_count()} cores, {cpu}")
    print()
    print(
        f"{meta['clients']} connections (autocannon, keep-alive, one request in flight each), {meta['sequences']} alternating "
        f"sequences of {meta['duration']} s runs after {meta['warmup']} s of warm-up each; every server {meta['pool']} database "
        f"connections; {meta['skus']} SKUs; Postgres {meta['postgres']}, sslmode={meta['sslmode']}; TWH: {meta['twh']}; "
        f"Node {meta['node']} for PostGraphile and autocannon; {meta['versions']}. Medians over the sequences. "
        "\"Server cores\" is the server's CPU per request times its throughput: how much of the machine's 2 cores it kept busy."
    )
    print()
    print(
        "| read | server | what it sends back | throughput (/s) | p50 (ms) | p99 (ms) | non-2xx / errors / bad bodies "
        "| response bytes | CPU ms per request: server / Postgres / client | server cores | per-sequence throughput |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    summary = []

    def line(read, rs, server, desc, bytes_):
        bad = (
            f"{sum(r['non_2xx'] for r in rs)} / {sum(r['errors'] + r['timeouts'] for r in rs)} / "
            f"{sum(r['mismatches'] for r in rs)}"
        )
        split = " / ".join(f"{med_cpu(rs, k):.3f}" for k in ("server", "postgres", "client"))
        cores = med_cpu(rs, "server") * med(rs, "throughput_per_s") / 1000
        per_sequence = ", ".join(str(round(r["throughput_per_s"])) for r in rs)
        print(
            f"| {read} | {server} | {desc} | {med(rs, 'throughput_per_s'):.0f} | {med(rs, 'p50_ms'):.2f} | "
            f"{med(rs, 'p99_ms'):.2f} | {bad} | {bytes_} | {split} | {cores:.2f} | {per_sequence} |"
        )

    for read in ("page", "lookup"):
        t = runs(f"twh-{read}")
        if not t:
            continue
        line(read, t, "**TWH**", what[("twh", read)], size.get(f"twh-{read}", ""))
        for variant in ("levels", "matched"):
            for server in ("pg5", "pg4"):
                rs = runs(f"{server}-{read}-{variant}")
                if not rs:
                    continue
                line(read, rs, f"{names[server]} ({variant})", what[(variant, read)], size.get(f"pg-{read}-{variant}", ""))
                summary.append(
                    {
                        "read": read,
                        "variant": variant,
                        "server": server,
                        "throughput": med(t, "throughput_per_s") / med(rs, "throughput_per_s"),
                        "p99": med(rs, "p99_ms") / med(t, "p99_ms"),
                        "server_cpu": med_cpu(rs, "server") / med_cpu(t, "server"),
                        "total_cpu": (med_cpu(rs, "server") + med_cpu(rs, "postgres"))
                        / (med_cpu(t, "server") + med_cpu(t, "postgres")),
                    }
                )

    print()
    print(
        "| read | PostGraphile's fields | throughput: TWH ÷ PG 5 | TWH ÷ PG 4 | p99: PG 5 ÷ TWH | PG 4 ÷ TWH "
        "| server CPU per request: PG 5 ÷ TWH | PG 4 ÷ TWH | server + Postgres CPU per request: PG 5 ÷ TWH | PG 4 ÷ TWH |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for read in ("page", "lookup"):
        for variant in ("levels", "matched"):
            got = {s["server"]: s for s in summary if s["read"] == read and s["variant"] == variant}
            if not got:
                continue

            def cell(server, key, bold=False):
                if server not in got:
                    return "n/a"
                text = f"{got[server][key]:.2f}"
                return f"**{text}**" if bold else text

            print(
                f"| {read} | {variant} | {cell('pg5', 'throughput', True)} | {cell('pg4', 'throughput', True)} | "
                f"{cell('pg5', 'p99')} | {cell('pg4', 'p99')} | {cell('pg5', 'server_cpu')} | {cell('pg4', 'server_cpu')} | "
                f"{cell('pg5', 'total_cpu')} | {cell('pg4', 'total_cpu')} |"
            )


if __name__ == "__main__":
    main()
