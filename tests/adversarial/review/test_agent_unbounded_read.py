"""Review finding: a hostile agent (the storage server) ignores the Range header and answers a
bounded read with as many bytes as it likes; AgentBackend.get reads the whole body into memory
(``preload_content=True``) before ``read_bounded`` sees its length, so "every read is bounded by
its kind's cap" does not hold against the agent (nor S3, whose ``Body.read()`` is unbounded)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sealbox.backends.agent import AgentBackend
from sealbox.backends.base import read_bounded
from sealbox.errors import DestinationError

BODY = 64 << 20  # what the hostile agent sends for a 64 KiB read


class _Hostile(BaseHTTPRequestHandler):
    sent = 0

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(BODY))
        self.end_headers()
        block = b"\0" * (1 << 20)
        try:
            for _ in range(BODY // len(block)):
                self.wfile.write(block)
                type(self).sent += len(block)
        except OSError:
            pass

    def log_message(self, *args):
        pass


def test_a_hostile_agent_cannot_make_a_bounded_read_allocate_more_than_asked():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        backend = AgentBackend(f"http://127.0.0.1:{server.server_port}", "ns", "t" * 43, True)
        import tracemalloc

        tracemalloc.start()
        try:
            with pytest.raises(DestinationError, match="answered more than the 65,537 bytes"):
                read_bounded(backend, "config", 64 << 10)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 << 20, f"the client took {peak:,} bytes into memory for a 64 KiB read"
    finally:
        server.shutdown()
