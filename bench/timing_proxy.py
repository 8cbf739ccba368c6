"""A timing proxy in front of the emulator, for bench/coldstart.py: every
request is forwarded as it came, and the time the emulator took to answer it
(forwarded -> whole answer read) is added up, so a benchmark can tell the
emulator's share of a function's first event from the function's own."""

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class TimingProxy(ThreadingHTTPServer):
    """Forwards every request to the emulator and adds up the time each
    took there (forwarded -> whole answer read), since the last `take`."""

    daemon_threads = True

    def __init__(self, upstream):
        super().__init__(("127.0.0.1", 0), _Forward)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.lock = threading.Lock()
        self.seconds = 0.0
        self.calls = 0

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def take(self):
        """(emulator ms, calls) since the last take."""
        with self.lock:
            taken = (self.seconds * 1000, self.calls)
            self.seconds, self.calls = 0.0, 0
        return taken


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

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
        with self.server.lock:
            self.server.seconds += took
            self.server.calls += 1
        self.send_response_only(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward
