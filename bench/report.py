"""Turns one bench/run.sh run into a Markdown section, a JSON summary and a bar chart.

Inputs are what run.sh collected: hyperfine's --export-json (wall time per run, mean user and
system CPU), peak RSS per run from /usr/bin/time -v, key=value machine facts, the payload floor
of the alternatives (payload.py) and, when a Docker engine was at hand, `docker run` timings.
With --update FILE the section between `<!-- bench:start -->` and `<!-- bench:end -->` in FILE
is replaced; the hand-written analysis around it is left alone.
"""

import argparse
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
MIB = 1024 * 1024
START = "<!-- bench:start -->"
END = "<!-- bench:end -->"


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
    args = parser.parse_args()

    clients, machine, payload, docker = load(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chart(clients, out / "chart.png")
    chart_link = "bench/chart.png" if args.chart else "chart.png"
    section = markdown(clients, machine, payload, docker, chart_link)
    (out / "results.md").write_text(section)
    (out / "results.json").write_text(json.dumps(
        {"machine": machine, "clients": clients, "payload": payload,
         "targets": targets(clients, machine)}, indent=2) + "\n")

    if args.update:
        document = Path(args.update)
        text = document.read_text()
        if START not in text or END not in text:
            sys.exit(f"report: {document} has no {START} ... {END} section to replace")
        before, rest = text.split(START, 1)
        _, after = rest.split(END, 1)
        document.write_text(before + section.rstrip("\n") + after)
    if args.chart:
        shutil.copyfile(out / "chart.png", args.chart)
    sys.stdout.write(section)


if __name__ == "__main__":
    main()
