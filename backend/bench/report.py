"""Benchmark results: the JSON record, the printed table, docs/benchmarks.md and its chart."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"
DOCS_DIR = Path(__file__).parent.parent / "docs"
CHART = DOCS_DIR / "benchmarks.png"
TARGET_RPS_RATIO = 0.40
TARGET_P99_RATIO = 3.0
TARGET_SCALE_RATIO = 1.3
# The due-date and priority orders and the filters: within 1.5x.
TARGET_NEW_SHAPE_SCALE_RATIO = 1.5
FIRST_SORTS = {"-created_at", "created_at", "-updated_at", "updated_at", "title", "-title"}
TARGET_RSS_MB = 150
TARGET_OVERLOAD_GOODPUT_RATIO = 0.90
TARGET_OVERLOAD_P99_MS = 1000
TARGET_PROBE_MS = 100


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    postgres = subprocess.run(["psql", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    packages = ["fastapi", "starlette", "pydantic", "sqlalchemy", "sqlmodel", "psycopg", "uvicorn", "uvloop", "orjson"]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": postgres,
        "packages": {name: version(name) for name in packages},
    }


def save(results: dict[str, Any], *, full_run: bool) -> Path:
    """A partial run (some operations, or no scale run) goes to its own file and leaves the docs alone."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{results['date'][:10]}{'' if full_run else '-partial'}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    if full_run:
        write_markdown(results)
    return path


def _mark(ok: bool) -> str:
    return "yes" if ok else "**no**"


def table(results: dict[str, Any]) -> str:
    lines = [
        "| operation | service req/s | baseline req/s | ratio | service p50 / p99 ms "
        "| baseline p50 / p99 ms | p99 ratio | target met |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for operation, figures in results["operations"].items():
        service, baseline = figures["service"], figures["baseline"]
        met = figures["rps_ratio"] >= TARGET_RPS_RATIO and figures["p99_ratio"] <= TARGET_P99_RATIO
        lines.append(
            f"| {operation} | {service['rps']:,.0f} | {baseline['rps']:,.0f} | {figures['rps_ratio']:.0%} | "
            f"{service['p50_us'] / 1000:.2f} / {service['p99_us'] / 1000:.2f} | "
            f"{baseline['p50_us'] / 1000:.2f} / {baseline['p99_us'] / 1000:.2f} | "
            f"{figures['p99_ratio']:.2f} | {_mark(met)} |"
        )
    rss = results["service_peak_rss_mb"]
    lines.append(f"\nService peak RSS: {rss:.0f} MB (target at most {TARGET_RSS_MB} MB: {_mark(rss <= TARGET_RSS_MB)})")
    if results.get("overload"):
        lines.append("\n" + overload_table(results))
    if results.get("scale"):
        lines.append("\n" + scale_table(results))
    return "\n".join(lines)


def overload_table(results: dict[str, Any]) -> str:
    overload = results["overload"]
    lines = [
        "| connections | goodput (2xx/s) | answered p50 / p99 ms | refused (503) | client errors / timeouts "
        "| probes p99 / worst ms | probe failures | worker CPU a 2xx, ms | CPU stolen |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario, figures in overload["connections"].items():
        asked = figures["refused_503"] + figures["answered"]
        connections, _, clients = scenario.partition(" ")
        label = f"{int(connections):,}" + (", clients honour Retry-After" if clients else "")
        lines.append(
            f"| {label} | {figures['goodput_rps']:,.0f} | {figures['p50_ms']:,.0f} / "
            f"{figures['p99_ms']:,.0f} | {figures['refused_503']:,} of {asked:,} | "
            f"{figures['client_errors']} / {figures['client_timeouts']} | {figures['probe_p99_ms']:.1f} / "
            f"{figures['probe_max_ms']:.1f} | {figures['probe_failures']} | {_cpu_columns(figures)} |"
        )
    never_refusing = [
        ("service waiting without bound", scenario, figures)
        for scenario, figures in overload.get("unbounded", {}).items()
    ] + [("baseline", scenario, figures) for scenario, figures in overload.get("baseline", {}).items()]
    for who, scenario, figures in never_refusing:
        lines.append(
            f"| {int(scenario.split()[-1]):,}, {who} (never refuses) | {figures['goodput_rps']:,.0f} | "
            f"{figures['p50_ms']:,.0f} / {figures['p99_ms']:,.0f} | - | {figures['client_errors']} / "
            f"{figures['client_timeouts']} | - | - | {_cpu_columns(figures)} |"
        )
    busiest = [figures for scenario, figures in overload["connections"].items() if scenario != "32"]
    p99 = max(figures["p99_ms"] for figures in busiest)
    probes = max(figures["probe_p99_ms"] for figures in overload["connections"].values())
    errors = sum(f["client_errors"] + f["client_timeouts"] for f in overload["connections"].values())
    at_once, waiting = overload["goodput_ratio"], overload.get("goodput_ratio_retry_after", float("nan"))
    lines.append(
        f"\nGoodput at 1,024 connections: {at_once:.0%} of that at 32 when clients retry a refusal at once, "
        f"{waiting:.0%} when they wait the Retry-After (target at least {TARGET_OVERLOAD_GOODPUT_RATIO:.0%}: "
        f"{_mark(at_once >= TARGET_OVERLOAD_GOODPUT_RATIO)} / {_mark(waiting >= TARGET_OVERLOAD_GOODPUT_RATIO)}); "
        f"p99 of the answered at most {p99:,.0f} ms (target at most {TARGET_OVERLOAD_P99_MS:,} ms: "
        f"{_mark(p99 <= TARGET_OVERLOAD_P99_MS)}); client errors and timeouts {errors} (target 0: "
        f"{_mark(errors == 0)}); probes' p99 {probes:.0f} ms (target at most {TARGET_PROBE_MS} ms: "
        f"{_mark(probes <= TARGET_PROBE_MS)})."
    )
    if "baseline_goodput_ratio" in overload:
        lines.append(
            f"\nThe baseline, the bare stack with nothing of the service's, keeps "
            f"{overload['baseline_goodput_ratio']:.0%} of its goodput at 1,024 connections (no refusals: every "
            "request waits for the pool, however long)."
        )
    if "unbounded_goodput_ratio" in overload:
        lines.append(
            f"\nThe service waiting for a slot without bound, so that nothing is refused, keeps "
            f"{overload['unbounded_goodput_ratio']:.0%} of its goodput at 32 connections when 1,024 ask, each "
            f"answer costing {overload['unbounded_cpu_per_answer_ratio']:.2f}x the worker's CPU time: what a "
            "thousand requests in flight cost the service before any refusal."
        )
    if "cpu_per_answer_ratio" in overload:
        lines.append(
            f"\nWhat a 2xx answer costs the worker at 1,024 connections against 32 (its CPU time over the "
            f"answers, refusals included): {overload['cpu_per_answer_ratio']:.2f}x for the service when clients "
            f"retry at once, {overload['cpu_per_answer_ratio_retry_after']:.2f}x when they wait the Retry-After, "
            f"{overload['baseline_cpu_per_answer_ratio']:.2f}x for the baseline."
        )
    return "\n".join(lines)


def _cpu_columns(figures: dict[str, Any]) -> str:
    if "worker_cpu_ms_per_answer" not in figures:
        return "- | -"
    return f"{figures['worker_cpu_ms_per_answer']:.2f} | {figures['stolen_share']:.1%}"


def migration_section() -> str:
    """The last `python -m bench.migration` run, when there is one."""
    path = RESULTS_DIR / "migration.json"
    if not path.exists():
        return ""
    run = json.loads(path.read_text())
    during, before = run["write_ms_during"], run["write_ms_before"]
    return f"""
### Migrating a live copy

`python -m bench.migration` ({run["date"][:10]}): a database at revision {run.get("from_revision", "0002")} holding
{run["tasks"]:,} tasks, written all along by {run.get("writers", 4)} clients of the previous version (each
creates a task, then renames it), while `alembic upgrade head` runs. The upgrade took
{run["migration_seconds"]:,.0f} s. Over it, {run["writes_during"]:,} writes waited {during["p50"]} ms at the median,
{during["p99"]} ms at p99 and {during["max"]} ms at the most (before it: {before["p50"]} ms, {before["max"]} ms at
the most). Rows the previous version wrote after the search columns were filled: {run["rows_left_unfolded"]:,}
(found by search once next edited).
"""


def scale_table(results: dict[str, Any]) -> str:
    sizes = [str(size) for size in results["settings"]["heavy_sizes"]]
    header = " | ".join(f"{int(size):,} tasks" for size in sizes)
    lengths: dict[str, Any] = results.get("scale_page_lengths", {})
    lines = [
        f"| sort or filter | page | p50 ms at {header} | ratio {int(sizes[-1]):,} / {int(sizes[0]):,} "
        "| within target |" + (" entries on the page |" if lengths else ""),
        "|---|---|" + "---:|" * len(sizes) + "---:|---|" + ("---:|" if lengths else ""),
    ]
    for sort, pages in results["scale"].items():
        for page, by_size in pages.items():
            # A run before the rounds' own ratios were kept: the ratio of the medians.
            ratio = by_size.get("ratio", by_size[sizes[-1]] / by_size[sizes[0]])
            cells = " | ".join(f"{by_size[size] / 1000:.2f}" for size in sizes)
            target = TARGET_SCALE_RATIO if sort in FIRST_SORTS else TARGET_NEW_SHAPE_SCALE_RATIO
            why_not = results.get("scale_outside_target", {}).get(sort)
            verdict = f"shown, not held to it: {why_not}" if why_not else f"{_mark(ratio <= target)} ({target}x)"
            row = f"| `{sort}` | {page} | {cells} | {ratio:.2f} | {verdict} |"
            if lengths:
                row += " " + " / ".join(str(lengths[sort][page][size]) for size in sizes) + " |"
            lines.append(row)
    return "\n".join(lines)


def chart(results: dict[str, Any]) -> None:
    import matplotlib  # noqa: PLC0415 - only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    operations = list(results["operations"])
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(13, 5))
    positions = range(len(operations))
    service = [results["operations"][op]["service"]["rps"] for op in operations]
    baseline = [results["operations"][op]["baseline"]["rps"] for op in operations]
    throughput.bar([p - 0.2 for p in positions], service, width=0.4, label="service")
    throughput.bar([p + 0.2 for p in positions], baseline, width=0.4, label="baseline (bare ASGI)")
    for position, op in zip(positions, operations, strict=True):
        throughput.annotate(
            f"{results['operations'][op]['rps_ratio']:.0%}",
            (position - 0.2, service[position]),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    throughput.set_xticks(list(positions), operations)
    throughput.set_ylabel("requests per second (median)")
    throughput.set_title("Throughput per operation, 32 connections")
    throughput.legend()
    sizes = [int(size) for size in results["settings"]["heavy_sizes"]]
    for sort, pages in results.get("scale", {}).items():
        for page, by_size in pages.items():
            latency.plot(
                sizes,
                [by_size[str(size)] / 1000 for size in sizes],
                marker="o",
                linestyle="-" if page == "first" else "--",
                label=f"{sort} {page}",
            )
    latency.set_xscale("log")
    latency.set_xlabel("tasks of the user")
    latency.set_ylabel("p50 latency of a 50-task page (ms)")
    latency.set_title("List latency against list size")
    latency.set_ylim(bottom=0)
    latency.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(CHART, dpi=110)
    plt.close(figure)


def write_markdown(results: dict[str, Any]) -> None:
    chart(results)
    info = results["machine"]
    packages = ", ".join(f"{name} {ver}" for name, ver in info["packages"].items())
    settings = results["settings"]
    rounds_own_ratios = any("ratio" in page for pages in results.get("scale", {}).values() for page in pages.values())
    scale_ratios = ", and each ratio is the median of the rounds' own ratios" if rounds_own_ratios else ""
    (DOCS_DIR / "benchmarks.md").write_text(
        f"""# Benchmarks

`make bench` measures the service against the fastest honest Python stack doing the same work, and this
page holds its last full run ({results["date"]}). Raw figures: `backend/bench/results/{results["date"][:10]}.json`.

## How

- **Service**: production settings, one uvicorn worker (`python -m src.cli serve`), PostgreSQL, HS256
  tokens, JSON access logs, metrics on, the whole request path (auth, validation, ETags, request ids).
- **Baseline** (`bench/baseline.py`): a bare ASGI callable under uvicorn with uvloop and httptools,
  psycopg 3's async pool and orjson, running the same SQL for each operation and answering the same
  JSON; no framework, auth, validation or logging. It is the limit, not a competitor.
- **Load**: wrk, {settings["connections"]} connections, {settings["wrk_threads"]} threads,
  {settings["duration_s"]:.0f} s per run, service and baseline alternating (A B A B ...) for
  {settings["rounds"]} rounds after a warm-up; requests/s and latencies are medians over the rounds, and each
  ratio is the median over the rounds of that round's service/baseline ratio (the two runs of a round
  are back to back, so machine drift between rounds cancels out). Operations: list a 50-task page,
  get one task, create, patch (title), toggle completion.
- **Overload** (`bench/overload.py`): the same service, one worker with 10 connections to the database,
  asked for a 50-task page by {", ".join(f"{c:,}" for c in (32, 1024))} keep-alive connections in a closed
  loop (each sends its next request as soon as it has its answer; in the third scenario, a refused client
  first waits the `Retry-After` the 503 gives, as the API guide asks), {settings.get("overload_duration_s", 0):.0f} s
  a run after a 3 s warm-up, {settings.get("overload_rounds", 0)} rounds, medians, each goodput ratio the
  median of the rounds' own ratios; `/healthz` and `/readyz` asked every 100 ms meanwhile on connections
  of their own. The baseline is run the same way at 32 and 1,024 connections, for what the bare stack
  keeps. A request waits at most
  `DB_ACQUIRE_TIMEOUT_SECONDS` ({settings.get("db_acquire_timeout_s", 0)} s) for a connection, then gets a 503.
  The load comes from a small uvloop client rather than wrk, which gives one latency for answers and
  refusals together.
- **Scale**: one user with {", ".join(f"{size:,}" for size in settings["heavy_sizes"])} tasks; p50 latency
  (2 connections, {settings.get("scale_duration_s", 3):g} s a run) of the first page and of a page reached by
  cursor 90% deep, or as deep as leaves a full page after the cursor (with a tenth of 1,000 tasks
  matching, 90% deep would leave 10), for every sort, and, newest first, for a tag on a tenth of the
  tasks, a priority on a quarter, a word in a tenth of the titles (`milk`) and one in 0.01% (`quokka`, no
  deep page), and a one-week due window (about 1.3% of the tasks) soonest first and newest first; and the
  change feed, polled with the latest token (nothing new) and with a token 50 changes behind. Each figure
  is the median of {settings.get("scale_rounds", 1)} rounds; a round measures one case at every size back
  to back{scale_ratios}. The last column says how many entries each page held at each size: a page of 10 costs less
  to render than one of 50, whatever the list's size.
- **Machine**: {info["cpu"]}, {info["cores"]} cores, Linux {info["kernel"]}, Python {info["python"]},
  {info["postgresql"]}; {packages}. Client, service, baseline and PostgreSQL share the machine, so
  absolute numbers are low and noisy: read the ratios.

Targets: every operation at least {TARGET_RPS_RATIO:.0%} of the baseline's requests/s with p99 at most
{TARGET_P99_RATIO:.0f}x the baseline's; first and deep pages at the largest size within
{TARGET_SCALE_RATIO}x of the smallest (the due-date and priority orders and the filters within
{TARGET_NEW_SHAPE_SCALE_RATIO}x); peak RSS at most {TARGET_RSS_MB} MB. Under overload: goodput at 1,024
connections at least {TARGET_OVERLOAD_GOODPUT_RATIO:.0%} of that at 32, p99 of the answered requests at most
{TARGET_OVERLOAD_P99_MS:,} ms, no client-side errors or timeouts, probes within {TARGET_PROBE_MS} ms.

## Results

{table(results)}
{migration_section()}

![Throughput per operation and list latency against list size](benchmarks.png)

## Reading the overload figures

The load is a closed loop: a client whose request is refused sends the next one at once. With a wait
bounded by T, the requests that are not served come back about 1/T times a second each, and each
refusal costs the worker a request's fixed part: reading and parsing it, authentication, routing, the
503 and its log line (an eighth to a sixth of a 50-task page in the app, `bench.request_cost`, plus
uvicorn's and the kernel's share). A shorter T refuses more often; a longer one lets the answered
requests wait past the 1 s bound. The worker runs at 100% of a core in every scenario, so goodput is
what a core serves.

The last two columns say what each answer cost and whether the machine stayed the same: the worker's
CPU time over the run divided by its 2xx answers (so the refusals' cost is in it), and the share of the
machine's CPU time its hypervisor gave to other guests. A run with a tenth or more stolen measured a
slower machine as much as the service.

The baseline rows and the row of the service waiting without bound show the other side of the trade:
neither refuses, so every client waits its turn and the p99 reaches 1 s or more. The service keeps the
answered p99 under the bound by refusing; with clients that retry at once that is one refusal for every
one or two answers on this machine, and with clients that honour `Retry-After` a fraction of that.
Together, the rows split what the service loses at 1,024 connections in two. Waiting without bound, it
loses what a thousand requests in flight cost the worker, apart from any refusal (the bare stack loses
some of that too, less, and from run to run between nothing and a fifth); refusing, it loses that and
what its refusals cost. With clients that honour `Retry-After` the refusals cost little, and that
scenario keeps a little less than the unbounded one; with clients that retry at once, the refusals take
more.

The ratios under the table say how much more CPU a 2xx answer costs at 1,024 connections than at 32.
Part of it is the refusals': at about a fifth of a page each, all told, one and a half refusals an
answer add about a third of a page to each, a third of a refusal an answer less than a tenth. The rest,
about a quarter more for each answer, is not more work in the worker. Counted in instructions, through
the whole stack (uvicorn, httptools, uvloop, the app, the driver) with the worker under callgrind, a
served page runs 3.26 million instructions at 1,024 connections against 3.20 million at 32 (1.02x), with
3% more misses in a simulated core's first-level caches and 10% more in its 1 MiB second level (`python
-m bench.instructions`), too few to cost a quarter; called in-process, without uvicorn or sockets, it
costs the same CPU time with 1,024 requests in flight as with 32 (`python -m bench.request_cost
--in-flight`: 1.01x). Nor is it where the service parks its waiting requests: with the slot taken at the
ASGI entrance, before any middleware (a trial, not kept), an answer through uvicorn still cost as much
more, run for run on one machine; and a sampling profile of the two loads shows the extra time spread
over the whole stack, not in any one function. So the same instructions take longer: what a thousand
open connections cost outside the worker's own code, in the kernel and in the caches the worker shares
with it and with the client and the database on two cores, which the service, with far more code and
data per request than the baseline, feels more (the baseline loses between nothing and a fifth from run
to run). More goodput under such load comes from more
workers or hosts (each worker has its own pool and its own queue), or a proxy in front that keeps a
bounded number of connections to each worker and holds the excess on its side.

The probes are asked on keep-alive connections; the first answer on a connection opened while the
worker is saturated can take a second or more, so a load balancer should keep its probe connections.

## Reproduce

```sh
sudo apt-get install wrk          # Debian's package
make bench                        # BENCH_DATABASE_URL defaults to the local server's tasks_bench database
make bench BENCH_ARGS="--operations get,create --rounds 2 --skip-scale"   # a quicker partial run
cd backend && .venv/bin/python -m bench.request_cost 2>/dev/null   # CPU a request: served, refused, 401
cd backend && .venv/bin/python -m bench.request_cost --in-flight 2>/dev/null   # a page, 32 and 1,024 in flight
cd backend && .venv/bin/python -m bench.instructions   # a page's instructions through uvicorn, 32 and 1,024 (valgrind)
```

A partial run prints its table and saves `results/<date>-partial.json`; only a full run rewrites this page.

The first run seeds about {sum(settings["heavy_sizes"]) / 1e6:.1f} million tasks with COPY (a minute or
two); later runs reuse them.
"""
    )


if __name__ == "__main__":  # python -m bench.report results/<date>.json: the docs again from saved figures
    import sys

    write_markdown(json.loads(Path(sys.argv[1]).read_text()))
