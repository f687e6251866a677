"""A latency relay for bench/run.sh (issue 15): network round trips on loopback, and their count.

The kernel of the benchmark machine has no netem, so latency is added in user space: the clients
reach this relay instead of the fake Bitbucket, and it forwards every chunk it reads, in each
direction, half a round-trip time (RTT) later. One listener per origin (the token host and the
API host, each on its own port, as `bitbucket.org` and `api.bitbucket.org` are two hosts), so no
client can carry both requests on one connection.

What it models, and what not: the delay applies to data. A client's TCP connect to the relay
completes at loopback speed (the kernel answers the SYN before the relay sees the connection),
so the TCP handshake's round trip is not in the measured wall time; BENCHMARKS.md adds it on
paper. Bandwidth is unlimited: a chunk of any size arrives half an RTT after it left.

Round trips are counted here, from what crossed the relay, not inferred from wall time. On one
connection, a round trip starts when the client sends data while it is not already waiting (the
relay reads it; loopback makes that the moment the client wrote it) and ends when the first
chunk the server wrote *after receiving that data* reaches the client. Server data written
before the client's data arrived (the rest of an answer already on its way) answers nothing;
client data read while an answer is on its way to it rides on the round trip just answered (the
client sent it without waiting for that answer); an answer that reaches a client which has
already closed its side was not waited for; none of these count.

A run's count puts the round trips of all its connections on one timeline and takes the longest
chain of them in which each starts after the previous one ended: round trips that overlap in
time cannot both be in it, so a client that waits on two connections at once is credited for
it. (Merging overlapping intervals and counting the groups would undercount: two connections
each doing back-to-back round trips a little apart chain into one group.) The relay also records
the union of the intervals (the time the run spent waiting on the network) and each
connection's own count.

Runs are delimited over a control socket (HTTP over a Unix socket, so `curl --unix-socket` can
drive it from hyperfine's --prepare):

    GET /run?label=L&rtt=MS   close the current run, start run L with that RTT (ms)
    GET /end                  close the current run; connections after it are not recorded

Closing a run waits (at most 5 s) for its connections to finish, then appends one JSON line to
the --stats file. The relay prints `NAME_PORT=N` per origin and serves until its standard input
reaches end of file (like the fake, so it cannot outlive the script holding that pipe) or it
gets SIGTERM. Standard library only.
"""

import argparse
import http.server
import json
import os
import select
import signal
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from urllib.parse import parse_qs, urlsplit

CHUNK = 65536
FINISH_TIMEOUT_S = 5.0
now = time.monotonic


class Flight:
    """Client data that waits for an answer: when the client sent it, when the server got it."""

    __slots__ = ("start", "delivered")

    def __init__(self, start):
        self.start = start
        self.delivered = None


class Pipe:
    """One direction of a connection: what was read from `src` and is due to go to `dst`."""

    def __init__(self, connection, direction, src, dst):
        self.connection = connection
        self.direction = direction  # "up": client to server; "down": server to client
        self.src = src
        self.dst = dst
        self.due = deque()  # (due time, data, note); b"" is end of file
        self.reading = True
        self.failed = False
        self.finished = False


class Connection:
    """One client connection and its upstream one, relayed in both directions with a delay."""

    def __init__(self, origin, client, upstream, delay_s):
        self.origin = origin
        self.delay_s = delay_s
        self.accepted = now()
        self.pending = None  # the Flight the client waits on, if any
        self.answering = False  # an answer was read from the server and is not delivered yet
        self.client_closed = False
        self.round_trips = []  # (start, end) in monotonic seconds
        self.bytes = {"up": 0, "down": 0}
        self.late_s = []  # how much later than due each chunk went out (s)
        self.pipes = (Pipe(self, "up", client, upstream), Pipe(self, "down", upstream, client))
        self.sockets = (client, upstream)
        self.done = threading.Event()

    def on_read(self, pipe, data, at):
        """The round-trip bookkeeping for a chunk read at `at`; returns its note."""
        if pipe.direction == "up":
            if not data:
                self.client_closed = True
                return None
            self.bytes["up"] += len(data)
            if self.pending is None and not self.answering:
                self.pending = Flight(at)
                return self.pending  # its delivery time is set when it goes out
            # Either part of the flight the client already waits on, or sent before the answer
            # to it could have reached the client: it did not wait for that answer, so the
            # data rides on the same round trip (a TLS client's request after its Finished,
            # say, when the server's session tickets were quicker than the request's write).
            return None
        if not data:
            return None
        self.bytes["down"] += len(data)
        flight = self.pending
        if flight is not None and flight.delivered is not None and at >= flight.delivered:
            # Written by the server after the client's data reached it: the answer.
            self.pending = None
            self.answering = True
            return flight
        return None

    def on_send(self, pipe, note, at):
        """Bookkeeping as a chunk goes out; returns the round trip it completes, if any."""
        if note is None:
            return None
        if pipe.direction == "up":
            note.delivered = at
            return None
        self.answering = False
        if self.client_closed:
            # The client closed its side before the answer reached it: nothing waited on it.
            return None
        trip = (note.start, at)
        self.round_trips.append(trip)
        return trip

    def close(self):
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass
        self.done.set()

    def abort(self):
        """Ends a connection that did not finish in time (from another thread)."""
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Run:
    def __init__(self, label, rtt_ms):
        self.label = label
        self.rtt_ms = rtt_ms
        self.connections = []


def chain(intervals):
    """The most round trips that follow one another, each starting after the last one ended.

    Greedy by earliest end, which finds the largest set of pairwise disjoint intervals: round
    trips that overlap in time can never both be in it, so overlapping ones count once.
    """
    count, end = 0, None
    for s, e in sorted(intervals, key=lambda i: i[1]):
        if end is None or s >= end:
            count, end = count + 1, e
    return count


def union(intervals):
    """Total time covered by the intervals (the run's time waiting on the network)."""
    total, start, end = 0.0, None, None
    for s, e in sorted(intervals):
        if end is not None and s <= end:
            end = max(end, e)
            continue
        if end is not None:
            total += end - start
        start, end = s, e
    if end is not None:
        total += end - start
    return total


class Relay:
    """All listeners and connections, served by one thread.

    One thread and select(2): its timeout has microsecond resolution (epoll's, and so asyncio's,
    is a millisecond), and nothing waits for a thread switch or Python's GIL when a chunk is due.
    """

    def __init__(self, origins, stats_path, rtt_ms):
        self.origins = origins  # [(name, upstream (host, port))]
        self.stats_path = stats_path
        self.lock = threading.Lock()  # held by the loop while it works, by the control to read
        self.run = None
        self.default_rtt_ms = rtt_ms
        self.unrecorded = 0
        self.ports = {}
        self.listeners = {}  # socket: (name, upstream)
        self.pipes = []

    def listen(self):
        for name, upstream in self.origins:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Loopback only: the benchmark never leaves the machine.
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            self.ports[name] = listener.getsockname()[1]
            self.listeners[listener] = (name, upstream)

    def serve(self):
        while True:
            heads = [p.due[0][0] for p in self.pipes if p.due]
            timeout = max(0.0, min(heads) - now()) if heads else None
            readers = list(self.listeners) + [p.src for p in self.pipes if p.reading]
            readable, _, _ = select.select(readers, [], [], timeout)
            with self.lock:
                at = now()
                for sock in readable:
                    if sock in self.listeners:
                        self._accept(sock)
                for pipe in list(self.pipes):
                    if pipe.reading and pipe.src in readable:
                        self._read(pipe, at)
                for pipe in list(self.pipes):
                    self._send_due(pipe)

    def _accept(self, listener):
        name, upstream = self.listeners[listener]
        client, _ = listener.accept()
        try:
            server = socket.create_connection(upstream)
        except OSError:
            client.close()
            return
        # Every chunk goes on as it is, when it is due: no Nagle delays added by the relay.
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        run = self.run
        connection = Connection(name, client, server,
                                (run.rtt_ms if run else self.default_rtt_ms) / 2000)
        if run is not None:
            run.connections.append(connection)
        else:
            self.unrecorded += 1
        self.pipes += connection.pipes

    def _read(self, pipe, at):
        try:
            data = pipe.src.recv(CHUNK)
        except OSError:
            data = b""
        connection = pipe.connection
        note = connection.on_read(pipe, data, at)
        pipe.due.append((at + connection.delay_s, data, note))
        if not data:
            pipe.reading = False

    def _send_due(self, pipe):
        connection = pipe.connection
        while pipe.due and pipe.due[0][0] <= now():
            due, data, note = pipe.due.popleft()
            # Times are taken as the data goes out, before the send: the peer may react to it
            # before this loop looks again.
            at = now()
            if data:
                connection.late_s.append(at - due)
            trip = connection.on_send(pipe, note, at)
            if not pipe.failed:
                try:
                    if data:
                        pipe.dst.sendall(data)
                    else:
                        pipe.dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pipe.failed = True
            if pipe.failed and trip is not None:
                # The answer never reached the client: nothing waited on it.
                connection.round_trips.remove(trip)
            if not data:
                pipe.finished = True
                self.pipes.remove(pipe)
                if all(p.finished for p in connection.pipes):
                    connection.close()
                break

    def begin(self, label, rtt_ms):
        """Closes the current run and starts the next; returns once the last one is written."""
        with self.lock:
            previous, self.run = self.run, (Run(label, rtt_ms) if label is not None else None)
        if previous is not None:
            self._finish(previous)

    def _finish(self, run):
        deadline = now() + FINISH_TIMEOUT_S
        unfinished = 0
        for connection in run.connections:
            if not connection.done.wait(max(0.0, deadline - now())):
                unfinished += 1
                connection.abort()
        intervals, connections, late = [], [], []
        start = min((c.accepted for c in run.connections), default=0.0)
        with self.lock:
            for c in sorted(run.connections, key=lambda c: c.accepted):
                trips = sorted(c.round_trips)
                late += c.late_s
                connections.append({
                    "origin": c.origin,
                    "round_trips": len(trips),
                    "intervals_ms": [[round((s - start) * 1000, 3), round((e - start) * 1000, 3)]
                                     for s, e in trips],
                    "bytes_up": c.bytes["up"],
                    "bytes_down": c.bytes["down"],
                })
                intervals += trips
        record = {
            "label": run.label,
            "rtt_ms": run.rtt_ms,
            "round_trips": chain(intervals),
            "waiting_ms": round(union(intervals) * 1000, 3),
            "connections": connections,
            "chunks": len(late),
            "late_ms_mean": round(sum(late) / len(late) * 1000, 3) if late else 0.0,
            "late_ms_max": round(max(late, default=0.0) * 1000, 3),
            "late_over_1ms": sum(1 for x in late if x > 0.001),
            "unfinished": unfinished,
        }
        with open(self.stats_path, "a", encoding="utf-8") as stats:
            stats.write(json.dumps(record) + "\n")


class UnixHTTPServer(socketserver.UnixStreamServer):
    allow_reuse_address = False


def control_handler(relay):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                if url.path == "/run":
                    relay.begin(query["label"], float(query.get("rtt", relay.default_rtt_ms)))
                elif url.path == "/end":
                    relay.begin(None, relay.default_rtt_ms)
                else:
                    return self._reply(404, "no such command\n")
            except (KeyError, ValueError) as error:
                return self._reply(400, f"bad request: {error}\n")
            self._reply(200, "ok\n")

        def _reply(self, status, text):
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            # Quiet; and a Unix socket's client address has no host for the default format.
            pass

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--origin", nargs=2, action="append", metavar=("NAME", "HOST:PORT"),
                        required=True, help="a listener relaying to HOST:PORT (repeatable)")
    parser.add_argument("--control", required=True, help="path of the control Unix socket")
    parser.add_argument("--stats", required=True, help="file to append one JSON line per run to")
    parser.add_argument("--rtt", type=float, default=0.0, help="RTT in ms outside any run")
    args = parser.parse_args()

    origins = []
    for name, address in args.origin:
        host, _, port = address.rpartition(":")
        origins.append((name, (host, int(port))))
    relay = Relay(origins, args.stats, args.rtt)
    relay.listen()
    threading.Thread(target=relay.serve, daemon=True).start()
    if os.path.exists(args.control):
        os.unlink(args.control)
    control = UnixHTTPServer(args.control, control_handler(relay))
    threading.Thread(target=control.serve_forever, daemon=True).start()

    for name, port in relay.ports.items():
        print(f"{name.upper()}_PORT={port}")
    sys.stdout.flush()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        # Serve until standard input reaches end of file.
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        relay.begin(None, relay.default_rtt_ms)
        control.server_close()
        try:
            os.unlink(args.control)
        except OSError:
            pass
        if relay.unrecorded:
            print(f"relay: {relay.unrecorded} connection(s) outside any run", file=sys.stderr)


if __name__ == "__main__":
    main()
