"""A timing proxy in front of the emulator, for bench/coldstart.py: every
request is forwarded as it came, and two times are kept per call:

* the emulator's: forwarded -> whole answer read (what AWS would take);
* the proxy's hold: request line read -> whole answer written back (the
  emulator's time plus the proxy's own forwarding).

A function's own time in an invocation is its wall time minus the union of
the holds: the time with no call of it outstanding, measured in the same
invocation (not one median minus another)."""

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


def union_seconds(intervals):
    """The length of the union of (start, end) intervals: overlapping calls
    (a function's parallel requests) count once."""
    total, reach = 0.0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


class TimingProxy(ThreadingHTTPServer):
    """Forwards every request to the emulator and keeps, since the last
    `take`, each call's emulator time and hold."""

    daemon_threads = True

    def __init__(self, upstream):
        super().__init__(("127.0.0.1", 0), _Forward)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.lock = threading.Lock()
        self.seconds = 0.0
        self.holds = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def take(self):
        """(emulator ms, calls, ms with a call held) since the last take."""
        with self.lock:
            taken = (self.seconds * 1000, len(self.holds), union_seconds(self.holds) * 1000)
            self.seconds, self.holds = 0.0, []
        return taken


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An answer goes out at once: with Nagle's algorithm, its last segment
    # waits for the client's delayed ACK of the one before (up to 40 ms on
    # Linux) on a connection the client keeps, and that wait would count as
    # the function's own time.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def parse_request(self):
        # Called as soon as the request line is read: the hold starts here.
        self.received = time.perf_counter()
        return super().parse_request()

    def forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("connection", "keep-alive", "proxy-connection")}
        if not hasattr(self, "upstream"):
            self.upstream = http.client.HTTPConnection(*self.server.upstream)
        started = time.perf_counter()
        self.upstream.request(self.command, self.path, body, headers)
        response = self.upstream.getresponse()
        data = response.read()
        took = time.perf_counter() - started
        self.send_response_only(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        # Headers and body in one write.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(data)
        self.flush_headers()
        with self.server.lock:
            self.server.seconds += took
            self.server.holds.append((self.received, time.perf_counter()))

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward
