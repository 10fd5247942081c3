#!/usr/bin/env python3
# A stand-in API server replica: HTTPS on the VIPs answering with its name,
# an echo mode for long-lived streams, and plain HTTP health on its own address.
"""Backend server for the namespace topology.

On every --tls address it serves TLS on --port. A connection whose first line
is "ECHO" gets "<name>\\n" back and then every byte it sends, until it closes
(used by the long-lived connection tests). Anything else is read as an HTTP
request and answered "200 <name>". On every --health address it serves the
same HTTP answers in clear text on --health-port (for the agents' tcp/http
health checks).
"""

import argparse
import socket
import socketserver
import ssl
import sys
import threading


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.request.settimeout(60)
        if self.server.tls is not None:
            try:
                self.request = self.server.tls.wrap_socket(
                    self.request, server_side=True)
            except (ssl.SSLError, OSError):
                # a tcp health check or a client that gave up
                self.request = None

    def handle(self):
        if self.request is None:
            return
        try:
            line = self._readline()
            if line.startswith(b"ECHO"):
                self._echo()
            else:
                self._http(line)
        except (OSError, ssl.SSLError):
            pass

    def _readline(self):
        buf = b""
        while not buf.endswith(b"\n") and len(buf) < 8192:
            chunk = self.request.recv(1)
            if not chunk:
                break
            buf += chunk
        return buf

    def _echo(self):
        self.request.sendall(self.server.name.encode() + b"\n")
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)

    def _http(self, first):
        # drain the request headers
        while True:
            line = self._readline()
            if line in (b"", b"\r\n", b"\n"):
                break
        body = (self.server.name + "\n").encode()
        head = ("HTTP/1.1 200 OK\r\n"
                "Content-Type: text/plain\r\n"
                "Content-Length: %d\r\n"
                "X-Backend: %s\r\n"
                "Connection: close\r\n\r\n" % (len(body), self.server.name))
        self.request.sendall(head.encode() + body)
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.unwrap()
            except (OSError, ssl.SSLError):
                pass


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, addr, port, name, tls):
        self.address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.name = name
        self.tls = tls
        super().__init__((addr, port), Handler)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--port", type=int, default=6443)
    ap.add_argument("--health-port", type=int, default=8080)
    ap.add_argument("--tls", action="append", default=[],
                    help="address to serve TLS on (repeat)")
    ap.add_argument("--health", action="append", default=[],
                    help="address to serve clear HTTP on (repeat)")
    args = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)

    servers = []
    for a in args.tls:
        servers.append(Server(a, args.port, args.name, ctx))
    for a in args.health:
        servers.append(Server(a, args.health_port, args.name, None))
        # the service port on the own address too, for tcp checks
        servers.append(Server(a, args.port, args.name, ctx))
    if not servers:
        print("backend_server: nothing to listen on", file=sys.stderr)
        return 1
    threads = [threading.Thread(target=s.serve_forever, daemon=True)
               for s in servers]
    for t in threads:
        t.start()
    print("backend_server %s: listening" % args.name, flush=True)
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
