"""Turns one bench/run.sh run into a Markdown section, a JSON summary and a bar chart.

Inputs are what run.sh collected: hyperfine's --export-json (wall time per run, mean user and
system CPU), peak RSS per run from /usr/bin/time -v, key=value machine facts, the payload floor
of the alternatives (payload.py) and, when a Docker engine was at hand, `docker run` timings;
for the latency tables (issue 15), hyperfine's exports of the runs through bench/relay.py, one per
round, RTT and job (the Bitbucket job; the OAuth 2.0 job with discovery and JWKS), and the
relay's own record of every run (its round-trip count).
With --update FILE the sections between `<!-- bench:start -->` and `<!-- bench:end -->`, and
between `<!-- bench-latency:start -->` and `<!-- bench-latency:end -->`, in FILE are replaced;
the hand-written analysis around them is left alone.
"""

import argparse
import collections
import json
import shutil
import statistics
import sys
from pathlib import Path

PIPE = "oauth-token-pipe"
RECIPE = "curl | jq recipe"
PYTHON = "Python requests"
NEXT = "curl --next (1 process)"
FLOOR = "static no-op (floor)"
# The OAuth 2.0 job (through the relay only): the pipe with discovery, and two clients that
# were given the token endpoint and the JWKS URL.
O2_PIPE = "oauth-token-pipe, PROVIDER=oauth2"
O2_NEXT = "curl --next, URLs given (1 process)"
O2_PYTHON = "Python requests Session, URLs given"
O2_BASELINES = (O2_NEXT, O2_PYTHON)
MIB = 1024 * 1024
START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
LATENCY_START = "<!-- bench-latency:start -->"
LATENCY_END = "<!-- bench-latency:end -->"
# The relay's run labels name clients by these keys (bench/run.sh).
KEYS = {"pipe": PIPE, "recipe": RECIPE, "requests": PYTHON, "next": NEXT,
        "oauth2-pipe": O2_PIPE, "oauth2-next": O2_NEXT, "oauth2-requests": O2_PYTHON}
# How the tables name the relay's origins.
ORIGINS = {"api": "API", "token": "token", "oauth2": "issuer"}
# Issue 15's targets.
TARGET_RTT_MS = 80
TARGET_ROUND_TRIPS = 3
TARGET_SLACK_S = 0.010
TARGET_RECIPE_RATIO = 1.3
TARGET_RECIPE_RTTS_MS = (20, 80)
# PROVIDER=oauth2 with discovery: at most the round trips of a client given every URL, plus one.
TARGET_DISCOVERY_EXTRA = 1


def quantile(values, q):
    """Linear-interpolated quantile, q in [0, 1]."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ms(seconds):
    value = seconds * 1000
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def mib(n_bytes):
    return f"{n_bytes / MIB:.2f} MiB"


def cell(text):
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def ratio(value, base):
    if not base:
        return "–"
    r = value / base
    return f"{r:.2f}×" if r < 1 else f"{r:.1f}×"


def load(args):
    # One hyperfine export per round: the runs of a client are merged across rounds, and its
    # mean user and system CPU are weighted by each round's run count.
    merged = {}
    for export in args.hyperfine:
        for result in json.loads(Path(export).read_text())["results"]:
            into = merged.setdefault(result["command"], {"times": [], "user": 0.0, "system": 0.0})
            into["times"] += result["times"]
            into["user"] += result["user"] * len(result["times"])
            into["system"] += result["system"] * len(result["times"])
    rss = json.loads(Path(args.rss).read_text())
    machine = dict(
        line.split("=", 1)
        for line in Path(args.machine).read_text().splitlines()
        if "=" in line
    )
    payload = json.loads(Path(args.payload).read_text()) if args.payload else {}
    docker = json.loads(Path(args.docker).read_text())["results"] if args.docker else []
    clients = {}
    for name, result in merged.items():
        times = result["times"]
        user = result["user"] / len(times)
        system = result["system"] / len(times)
        kib = [int(k) for k in rss[name]]
        clients[name] = {
            "median_s": statistics.median(times),
            "p25_s": quantile(times, 0.25),
            "p75_s": quantile(times, 0.75),
            "mean_s": statistics.fmean(times),
            "stddev_s": statistics.stdev(times) if len(times) > 1 else 0.0,
            "min_s": min(times),
            "max_s": max(times),
            "cpu_s": user + system,
            "user_s": user,
            "system_s": system,
            "runs": len(times),
            "rss_kib": statistics.median(kib),
            "rss_kib_max": max(kib),
        }
    return clients, machine, payload, docker


def targets(clients, machine):
    """The issue's targets: (target, measured, verdict)."""
    pipe = clients[PIPE]
    rows = []

    def verdict(ok):
        return "**met**" if ok else "**missed**"

    t = pipe["median_s"]
    if NEXT in clients:
        other = clients[NEXT]["median_s"]
        rows.append((
            "Faster than one `curl` process doing both requests",
            f"{ms(t)} vs {ms(other)} ({other / t:.1f}× faster)",
            verdict(t < other),
        ))
    if RECIPE in clients:
        other = clients[RECIPE]["median_s"]
        rows.append((
            "At least 10× faster than the curl | jq recipe",
            f"{other / t:.1f}× ({ms(other)} vs {ms(t)})",
            verdict(other / t >= 10),
        ))
    if PYTHON in clients:
        other = clients[PYTHON]["median_s"]
        rows.append((
            "At least 30× faster than the Python requests script",
            f"{other / t:.1f}× ({ms(other)} vs {ms(t)})",
            verdict(other / t >= 30),
        ))
    if FLOOR in clients:
        floor = clients[FLOOR]["median_s"]
        rows.append((
            "Wall time at most 2 ms above a static no-op binary",
            f"+{(t - floor) * 1000:.2f} ms ({ms(t)} vs {ms(floor)})",
            verdict(t - floor <= 0.002),
        ))
    rss = pipe["rss_kib"] * 1024
    rows.append(("Peak RSS under 4 MiB", mib(rss), verdict(rss < 4 * MIB)))
    binary = int(machine["binary_bytes"])
    rows.append((
        "Static binary under 3 MiB",
        f"{mib(binary)} ({binary:,} bytes)",
        verdict(binary < 3 * MIB),
    ))
    if machine.get("image_bytes"):
        image = int(machine["image_bytes"])
        rows.append((
            "Image under 3 MiB",
            f"{mib(image)} ({image:,} bytes)",
            verdict(image < 3 * MIB),
        ))
    else:
        rows.append((
            "Image under 3 MiB",
            f"unmeasured ({machine.get('image_note') or 'no Docker engine'})",
            "not judged",
        ))
    return rows


def markdown(clients, machine, payload, docker, chart):
    pipe = clients[PIPE]
    lines = [
        START,
        f"_Generated by `bash bench/run.sh` at {machine['date']}; a new run replaces everything "
        "between these markers._",
        "",
        f"**Machine:** {machine['nproc']} × {machine['cpu']} (`nproc` {machine['nproc']}), "
        f"Linux {machine['kernel']}, {machine['os']}, {machine['memory']} memory; "
        f"load average at the start {machine['loadavg']}.  ",
        f"**Tools:** {machine['hyperfine']}; {machine['curl']}; {machine['jq']}; "
        f"{machine['python']}; {machine['rustc']}.  ",
        f"**Method:** {machine['runs']} timed runs per client in {machine['rounds']} round(s) that "
        f"each run every client in turn ({machine['warmup']} warm-up runs per round; hyperfine, "
        "no shell in between; no OUTPUT_FILE before any run); user+sys CPU is hyperfine's mean; peak RSS is the "
        f"median of {machine['rss_runs']} runs under `/usr/bin/time -v` (for the recipe, its "
        "largest single process). Every client ran in the same clean environment against the "
        "same fake Bitbucket, two origins (`localhost` for the token, `127.0.0.1` for the API).",
        "",
        "| Client | Wall median | Spread: p25–p75 (min–max) | User+sys CPU | Peak RSS "
        "| Wall vs pipe | CPU vs pipe | RSS vs pipe |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, c in clients.items():
        label = f"**{cell(name)}**" if name == PIPE else cell(name)
        lines.append(
            f"| {label} | {ms(c['median_s'])} | {ms(c['p25_s'])}–{ms(c['p75_s'])} "
            f"({ms(c['min_s'])}–{ms(c['max_s'])}) | {ms(c['cpu_s'])} "
            f"| {c['rss_kib'] / 1024:.1f} MiB | {ratio(c['median_s'], pipe['median_s'])} "
            f"| {ratio(c['cpu_s'], pipe['cpu_s'])} | {ratio(c['rss_kib'], pipe['rss_kib'])} |"
        )
    lines += ["", f"![Median wall time and peak RSS per client]({chart})", ""]

    binary = int(machine["binary_bytes"])
    lines += [
        "| What a runner needs | Size | How it was measured |",
        "| --- | ---: | --- |",
        f"| oauth-token-pipe static binary | {mib(binary)} | `stat` of the musl release build |",
    ]
    if machine.get("image_bytes"):
        lines.append(
            f"| oauth-token-pipe image | {mib(int(machine['image_bytes']))} "
            "| `docker image inspect` of the image the Dockerfile builds |"
        )
        lines.append(
            f"| oauth-token-pipe image, compressed | {mib(int(machine['image_gzip_bytes']))} "
            "| `docker save \\| gzip -6`: about what a runner pulls |"
        )
    else:
        lines.append(
            f"| oauth-token-pipe image | unmeasured | {machine.get('image_note') or 'no Docker engine'} |"
        )
    for name, p in payload.items():
        lines.append(
            f"| {cell(name)}: files the job loads | {mib(p['bytes'])} "
            f"| {p['files']} files: {p['what']}, from this machine's packages — a floor under "
            "any image of it, not an image size |"
        )
    if docker:
        lines += ["", "| Container start (image already local) | Wall median | p25–p75 |",
                  "| --- | ---: | ---: |"]
        for result in docker:
            times = result["times"]
            lines.append(
                f"| {cell(result['command'])} | {ms(statistics.median(times))} "
                f"| {ms(quantile(times, 0.25))}–{ms(quantile(times, 0.75))} |"
            )
    lines += ["", "| Target (issue 6) | Measured | Verdict |", "| --- | --- | --- |"]
    for target, measured, verdict in targets(clients, machine):
        lines.append(f"| {cell(target)} | {cell(measured)} | {verdict} |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def chart(clients, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(clients)
    colours = ["#2e7d32" if n == PIPE else "#9e9e9e" if n == FLOOR else "#607d8b" for n in names]
    medians = [clients[n]["median_s"] * 1000 for n in names]
    low = [m - clients[n]["p25_s"] * 1000 for m, n in zip(medians, names)]
    high = [clients[n]["p75_s"] * 1000 - m for m, n in zip(medians, names)]
    rss = [clients[n]["rss_kib"] / 1024 for n in names]

    fig, (wall, mem) = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    y = range(len(names))
    wall.barh(y, medians, xerr=[low, high], color=colours, capsize=3)
    wall.set_xscale("log")
    wall.set_xlabel("median wall time, ms (log scale; whiskers p25–p75)")
    for i, m in enumerate(medians):
        wall.text(m * 1.15, i, f"{m:.2f}" if m < 10 else f"{m:.0f}", va="center", fontsize=9)
    wall.set_xlim(min(medians) / 2, max(medians) * 4)
    mem.barh(y, rss, color=colours)
    mem.set_xlabel("peak RSS, MiB (largest process)")
    for i, r in enumerate(rss):
        mem.text(r + max(rss) * 0.01, i, f"{r:.1f}", va="center", fontsize=9)
    mem.set_xlim(0, max(rss) * 1.15)
    wall.set_yticks(list(y), names)
    wall.invert_yaxis()
    fig.suptitle("Fetch a token, validate it, write the dotenv file (fake Bitbucket over HTTPS on loopback)",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def load_latency(args):
    """Wall times (hyperfine, per RTT) and the relay's records of the same runs, per client.

    The relay writes one record per run that hyperfine's --prepare announced, warm-up runs
    included: hyperfine runs a command's warm-ups, then its timed runs, and each (round, client,
    RTT) label belongs to one hyperfine command, so the first `warmup` records of a label are the
    warm-ups.
    """
    times = collections.defaultdict(list)  # (client, rtt) -> wall times
    for spec in args.latency:
        rtt, _, export = spec.partition(":")
        for result in json.loads(Path(export).read_text())["results"]:
            times[(result["command"], float(rtt))] += result["times"]
    records = collections.defaultdict(list)
    for line in Path(args.relay_stats).read_text().splitlines():
        record = json.loads(line)
        records[record["label"]].append(record)
    relayed = collections.defaultdict(list)  # (client, rtt) -> relay records of timed runs
    for label, runs in records.items():
        parts = label.split("/")
        if len(parts) != 3 or parts[1] not in KEYS:
            continue  # the untimed checks
        relayed[(KEYS[parts[1]], float(parts[2]))] += runs[args.latency_warmup:]
    latency = {}
    for (name, rtt), walls in times.items():
        runs = relayed.get((name, rtt), [])
        if len(runs) != len(walls):
            sys.exit(f"report: {name} at RTT {rtt:g} ms: {len(walls)} timed runs but "
                     f"{len(runs)} relay records")
        shapes = collections.Counter(
            tuple((c["origin"], c["round_trips"]) for c in run["connections"]) for run in runs)
        late = [run["late_ms_max"] for run in runs]
        latency.setdefault(name, {})[rtt] = {
            "median_s": statistics.median(walls),
            "p25_s": quantile(walls, 0.25),
            "p75_s": quantile(walls, 0.75),
            "runs": len(walls),
            "round_trips": [run["round_trips"] for run in runs],
            "round_trips_median": statistics.median(run["round_trips"] for run in runs),
            "connections": [list(shape) for shape in shapes.most_common(1)[0][0]] if shapes else [],
            "connection_shapes": len(shapes),
            "waiting_ms_median": statistics.median(run["waiting_ms"] for run in runs),
            "late_ms_mean": statistics.fmean(run["late_ms_mean"] for run in runs),
            "late_ms_max": max(late, default=0.0),
            "chunks": sum(run["chunks"] for run in runs),
            "late_over_1ms": sum(run["late_over_1ms"] for run in runs),
            "unfinished": sum(run["unfinished"] for run in runs),
        }
    return latency


def per_connection(m):
    """The round trips on each connection of the most common shape: "token 2, API 3"."""
    return ", ".join(f"{ORIGINS.get(origin, origin)} {n}" for origin, n in m["connections"])


def round_trips_cell(m):
    counts = m["round_trips"]
    low, high = min(counts), max(counts)
    median = m["round_trips_median"]
    head = f"{median:g}" if low == high else f"{median:g} ({low}–{high})"
    per = per_connection(m)
    note = "" if m["connection_shapes"] <= 1 else "; most runs"
    return f"**{head}** ({per}{note})" if per else f"**{head}**"


def latency_targets(latency):
    """Issue 15's targets: (target, measured, verdict)."""
    rows = []
    pipe = latency.get(PIPE, {})
    at = pipe.get(float(TARGET_RTT_MS))
    target = (f"At RTT {TARGET_RTT_MS} ms the Bitbucket job takes at most {TARGET_ROUND_TRIPS} "
              f"data round trips + {TARGET_SLACK_S * 1000:g} ms, against 4 for a sequential client")
    if at is None:
        rows.append((target, f"not measured in this run (RTT {TARGET_RTT_MS} ms not among its RTTs)",
                     "not judged"))
    else:
        rtt_s = TARGET_RTT_MS / 1000
        limit = TARGET_ROUND_TRIPS * rtt_s + TARGET_SLACK_S
        trips = at["round_trips_median"]
        per = per_connection(at)
        rows.append((
            target,
            f"{trips:g} round trips counted by the relay ({per}); wall {ms(at['median_s'])} "
            f"= {trips:g} × {TARGET_RTT_MS} ms + {ms(at['median_s'] - trips * rtt_s)}, "
            f"limit {ms(limit)}",
            "**met**" if trips <= TARGET_ROUND_TRIPS and at["median_s"] <= limit else "**missed**",
        ))
    recipe = latency.get(RECIPE, {})
    parts, ok, complete = [], True, True
    for rtt in TARGET_RECIPE_RTTS_MS:
        p, r = pipe.get(float(rtt)), recipe.get(float(rtt))
        if p is None or r is None:
            complete = False
            parts.append(f"{rtt} ms: not measured")
            continue
        ratio_ = r["median_s"] / p["median_s"]
        ok = ok and ratio_ >= TARGET_RECIPE_RATIO
        parts.append(f"{rtt} ms: {ratio_:.2f}× ({ms(r['median_s'])} vs {ms(p['median_s'])})")
    rows.append((
        f"At least {TARGET_RECIPE_RATIO:g}× faster than the curl | jq recipe at RTT "
        + " and ".join(f"{r} ms" for r in TARGET_RECIPE_RTTS_MS),
        "; ".join(parts),
        ("**met**" if ok else "**missed**") if complete else "not judged",
    ))
    rows.append(discovery_target(latency))
    return rows


def discovery_target(latency):
    """PROVIDER=oauth2 with discovery against the baseline with the fewest round trips, at
    every RTT but 0 (where the counts are loopback timing: the tables' footnote)."""
    target = ("PROVIDER=oauth2 with discovery and JWKS validation: no more round trips than a "
              "client that knew every URL in advance, plus one for discovery")
    pipe = latency.get(O2_PIPE, {})
    rtts = sorted(rtt for rtt in pipe if rtt > 0)
    parts, ok = [], True
    for rtt in rtts:
        p = pipe[rtt]
        baselines = [(latency[name][rtt], name) for name in O2_BASELINES
                     if rtt in latency.get(name, {})]
        if not baselines:
            continue
        base, name = min(baselines, key=lambda b: (b[0]["round_trips_median"], b[0]["median_s"]))
        trips, limit = p["round_trips_median"], base["round_trips_median"] + TARGET_DISCOVERY_EXTRA
        ok = ok and trips <= limit
        parts.append(
            f"{rtt:g} ms: {trips:g} round trips ({per_connection(p)}) vs {base['round_trips_median']:g} "
            f"for {name} ({per_connection(base)}), limit {limit:g}; wall {ms(p['median_s'])} vs "
            f"{ms(base['median_s'])}")
    if not parts:
        return (target, "not measured in this run (no RTT above 0 ms with the OAuth 2.0 job)",
                "not judged")
    return (target, "; ".join(parts), "**met**" if ok else "**missed**")


def latency_markdown(latency, machine, chart):
    rtts = sorted({rtt for per in latency.values() for rtt in per})
    top = rtts[-1] if rtts else None
    runs = sorted({m["runs"] for per in latency.values() for m in per.values()})
    late_mean = statistics.fmean(m["late_ms_mean"] for per in latency.values() for m in per.values())
    late_max = max(m["late_ms_max"] for per in latency.values() for m in per.values())
    chunks = sum(m["chunks"] for per in latency.values() for m in per.values())
    late_1ms = sum(m["late_over_1ms"] for per in latency.values() for m in per.values())
    unfinished = sum(m["unfinished"] for per in latency.values() for m in per.values())
    lines = [
        LATENCY_START,
        f"_Generated by `bash bench/run.sh` at {machine['date']}, in the same run as the table "
        "above; a new run replaces everything between these markers._",
        "",
        f"**Method:** every client through [`bench/relay.py`](bench/relay.py), which delays "
        "every chunk in each direction by half the RTT (for the Bitbucket job two listeners, "
        "`localhost` for the token and `127.0.0.1` for the API, each relaying to the fake). "
        f"{'/'.join(str(r) for r in runs)} timed runs per client and RTT in "
        f"{machine['latency_rounds']} round(s), each round going through every RTT and every "
        f"client ({machine['latency_warmup']} warm-up run per client and RTT; hyperfine, no shell "
        "in between; no OUTPUT_FILE before any run). **Round trips** are counted by the relay "
        "for every run (the median is shown, with the range when runs differed, and in brackets "
        "the round trips on each connection in the order they were opened); a real network adds "
        "one RTT per TCP connect on the critical path, which the relay does not model (see below). "
        f"The relay sent each chunk {late_mean:.2f} ms after it was due on average; "
        f"{late_1ms} of {chunks:,} chunks ({late_1ms / max(chunks, 1):.2%}) more than 1 ms late, "
        f"the worst {late_max:.1f} ms"
        + (f"; {unfinished} connection(s) did not close within 5 s" if unfinished else "")
        + ".",
        "",
    ]
    lines += latency_table(latency, (PIPE, RECIPE, PYTHON, NEXT), rtts, top)
    if any(name in latency for name in (O2_PIPE,) + O2_BASELINES):
        lines += ["", "**The OAuth 2.0 job** (`PROVIDER=oauth2`, same runs and RTTs, through a "
                  "third listener, `localhost`, relaying to the fake authorization server of "
                  "[`examples/fake_oauth2.rs`](examples/fake_oauth2.rs)): a client-credentials "
                  "token, an RS256 JWT, checked against the issuer's JWKS. The pipe is given "
                  "only `ISSUER` and discovers the token endpoint and the JWKS; the two others "
                  "are given both URLs and send no discovery request. All three requests go to "
                  "the issuer's host.", ""]
        lines += latency_table(latency, (O2_PIPE,) + O2_BASELINES, rtts, top)
    if 0 in rtts:
        lines += ["", "¹ With no delay the relay cannot tell a wait from a client's own pace: a "
                  "client that writes its request only after the server's TLS session tickets "
                  "have come back (they do at loopback speed) shows one more exchange per "
                  "connection. At 20 and 80 ms every request goes out long before any answer "
                  "can, and those counts are the protocol's."]
    if chart:
        lines += ["", f"![Median wall time per client at each RTT]({chart})"]
    lines += ["", "| Target (issue 15) | Measured | Verdict |", "| --- | --- | --- |"]
    for target, measured, verdict in latency_targets(latency):
        lines.append(f"| {cell(target)} | {cell(measured)} | {verdict} |")
    lines.append(LATENCY_END)
    return "\n".join(lines) + "\n"


def latency_table(latency, names, rtts, top):
    """The Markdown table of `names` (the first is the pipe the last column compares with)."""
    header = "| Client |"
    align = "| --- |"
    for rtt in rtts:
        header += f" RTT {rtt:g} ms: wall median (p25–p75) | round trips |"
        align += " ---: | ---: |"
    if top is not None:
        header += f" Waiting on the network at {top:g} ms | Wall vs pipe at {top:g} ms |"
        align += " ---: | ---: |"
    lines = [header, align]
    pipe = latency.get(names[0], {})
    for name in names:
        if name not in latency:
            continue
        per = latency[name]
        label = f"**{cell(name)}**" if name == names[0] else cell(name)
        row = f"| {label} |"
        for rtt in rtts:
            m = per.get(rtt)
            if m is None:
                row += " – | – |"
                continue
            mark = "¹" if rtt == 0 else ""
            row += (f" {ms(m['median_s'])} ({ms(m['p25_s'])}–{ms(m['p75_s'])}) "
                    f"| {cell(round_trips_cell(m))}{mark} |")
        if top is not None:
            m = per.get(top)
            base = pipe.get(top)
            if m is None:
                row += " – | – |"
            else:
                row += (f" {ms(m['waiting_ms_median'] / 1000)} "
                        f"| {ratio(m['median_s'], base['median_s']) if base else '–'} |")
        lines.append(row)
    return lines


def latency_chart(latency, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rtts = sorted({rtt for per in latency.values() for rtt in per})
    jobs = [
        ((PIPE, RECIPE, PYTHON, NEXT), "The Bitbucket job through a relay adding the RTT "
         "(RT: data round trips counted by the relay)"),
        ((O2_PIPE,) + O2_BASELINES, "The OAuth 2.0 job: the pipe discovers the endpoints, the "
         "others were given them (one issuer host)"),
    ]
    jobs = [([n for n in names if n in latency], title) for names, title in jobs]
    jobs = [(names, title) for names, title in jobs if names]
    fig, axes = plt.subplots(len(jobs), 1, figsize=(11, 3.8 * len(jobs)), squeeze=False)
    top = max((m["median_s"] for per in latency.values() for m in per.values()), default=0.1)
    for ax, (names, title) in zip(axes[:, 0], jobs):
        latency_panel(ax, latency, names, rtts, top, title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def latency_panel(ax, latency, names, rtts, top, title):
    width = 0.8 / max(1, len(names))
    colours = {PIPE: "#2e7d32", RECIPE: "#607d8b", PYTHON: "#90a4ae", NEXT: "#37474f",
               O2_PIPE: "#2e7d32", O2_NEXT: "#37474f", O2_PYTHON: "#90a4ae"}
    for k, name in enumerate(names):
        xs = [i + (k - (len(names) - 1) / 2) * width for i in range(len(rtts))]
        medians = [latency[name][r]["median_s"] * 1000 if r in latency[name] else 0 for r in rtts]
        ax.bar(xs, medians, width * 0.95, color=colours[name], label=name)
        for x, r, m in zip(xs, rtts, medians):
            if r in latency[name]:
                # At RTT 0 the count is loopback timing (see the table's footnote): not drawn.
                trips = latency[name][r]["round_trips_median"]
                label = f"{m:.0f}" if r == 0 else f"{m:.0f}\n{trips:g} RT"
                ax.text(x, m + 3, label, ha="center", va="bottom", fontsize=7)
    if PIPE in names and float(TARGET_RTT_MS) in rtts:
        # Issue 15's limit for the pipe at that RTT.
        i = rtts.index(float(TARGET_RTT_MS))
        limit = TARGET_ROUND_TRIPS * TARGET_RTT_MS + TARGET_SLACK_S * 1000
        ax.hlines(limit, i - 0.45, i + 0.45, colors="#c62828", linestyles="dashed", linewidth=1)
        ax.text(i + 0.46, limit, f"target:\n{limit:g} ms", color="#c62828", fontsize=7,
                va="center")
    ax.set_xticks(range(len(rtts)), [f"RTT {r:g} ms" for r in rtts])
    ax.set_ylabel("median wall time, ms")
    ax.set_ylim(0, top * 1000 * 1.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title, fontsize=11)


def replace_section(text, start, end, section, document):
    if start not in text or end not in text:
        sys.exit(f"report: {document} has no {start} ... {end} section to replace")
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    return before + section.rstrip("\n") + after


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hyperfine", required=True, nargs="+", help="one export per round")
    parser.add_argument("--rss", required=True)
    parser.add_argument("--machine", required=True)
    parser.add_argument("--payload")
    parser.add_argument("--docker")
    parser.add_argument("--out", required=True, help="folder for results.md/json and chart.png")
    parser.add_argument("--update", help="Markdown file whose bench markers to replace")
    parser.add_argument("--chart", help="also copy the chart here")
    parser.add_argument("--latency", nargs="+", default=[], metavar="RTT:EXPORT",
                        help="hyperfine export of runs through the relay at RTT ms")
    parser.add_argument("--relay-stats", help="the relay's records, one JSON line per run")
    parser.add_argument("--latency-warmup", type=int, default=0,
                        help="warm-up runs per client and RTT in each latency round")
    parser.add_argument("--latency-chart", help="also copy the latency chart here")
    args = parser.parse_args()

    clients, machine, payload, docker = load(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chart(clients, out / "chart.png")
    chart_link = "bench/chart.png" if args.chart else "chart.png"
    section = markdown(clients, machine, payload, docker, chart_link)
    latency = load_latency(args) if args.latency else {}
    latency_section = ""
    if latency:
        latency_chart(latency, out / "latency.png")
        link = "bench/latency.png" if args.latency_chart else "latency.png"
        latency_section = latency_markdown(latency, machine, link)
    (out / "results.md").write_text(section + ("\n" + latency_section if latency else ""))
    (out / "results.json").write_text(json.dumps(
        {"machine": machine, "clients": clients, "payload": payload,
         "targets": targets(clients, machine),
         "latency": {name: {f"{rtt:g}": m for rtt, m in per.items()}
                     for name, per in latency.items()},
         "latency_targets": latency_targets(latency) if latency else []}, indent=2) + "\n")

    if args.update:
        document = Path(args.update)
        text = replace_section(document.read_text(), START, END, section, document)
        if latency:
            text = replace_section(text, LATENCY_START, LATENCY_END, latency_section, document)
        document.write_text(text)
    if args.chart:
        shutil.copyfile(out / "chart.png", args.chart)
    if args.latency_chart and latency:
        shutil.copyfile(out / "latency.png", args.latency_chart)
    sys.stdout.write(section + ("\n" + latency_section if latency else ""))


if __name__ == "__main__":
    main()
