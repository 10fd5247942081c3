#!/usr/bin/env python3
# Test client for the namespace topology: TLS requests that report the backend
# that answered, many flows from fixed source ports, long echo streams, and
# bursts of new connections.
"""Client side of the integration tests. Every subcommand prints one JSON
object on stdout.

  get     one TLS request; {"backend": NAME} or {"error": ...} (exit 1)
  flows   one request per source port in a range, each closed with RST so
          the same 4-tuple can be used again at once;
          {"flows": {"PORT": NAME or null}}
  stream  an echo stream for --seconds (or until --until FILE exists);
          {"backend", "sent", "received",
          "equal", "error"}; exit 0 only when every byte came back intact
  burst   --count new TCP connections at once (SYN only matters);
          {"admitted": n, "refused": n}
  pace    one new connection every 1/--rate seconds for --seconds;
          {"admitted": n, "refused": n, "per_second": [n, ...]}
"""

import argparse
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def tcp_connect(args, sport=0, timeout=None):
    s = socket.socket(family_of(args.vip), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # RST on close: no TIME_WAIT, so a source port can be used again at once
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if args.src or sport:
        s.bind((args.src or "", sport))
    s.settimeout(timeout if timeout is not None else args.timeout)
    s.connect((args.vip, args.port))
    return s


def tls_context(args):
    ctx = ssl.create_default_context(cafile=args.cacert)
    return ctx


def tls_request(args, ctx, sport=0):
    s = tcp_connect(args, sport)
    try:
        t = ctx.wrap_socket(s, server_hostname=args.sni)
        t.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % args.sni.encode())
        data = b""
        while True:
            chunk = t.recv(4096)
            if not chunk:
                break
            data += chunk
        body = data.split(b"\r\n\r\n", 1)[1]
        return body.decode().strip()
    finally:
        s.close()


def cmd_get(args):
    try:
        name = tls_request(args, tls_context(args), args.sport)
    except Exception as e:  # noqa: BLE001 - reported to the caller
        print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
        return 1
    print(json.dumps({"backend": name}))
    return 0


def cmd_flows(args):
    ctx = tls_context(args)
    lo, hi = (int(x) for x in args.sports.split("-"))
    out = {}
    for p in range(lo, hi + 1):
        try:
            out[str(p)] = tls_request(args, ctx, p)
        except Exception:  # noqa: BLE001 - a lost flow is data here
            out[str(p)] = None
    print(json.dumps({"flows": out}))
    return 0


def cmd_stream(args):
    res = {"backend": None, "sent": 0, "received": 0, "equal": False,
           "error": None}
    pattern = os.urandom(4096)
    try:
        s = tcp_connect(args, args.sport)
        t = tls_context(args).wrap_socket(s, server_hostname=args.sni)
        t.sendall(b"ECHO\n")
        f = t.makefile("rb")
        res["backend"] = f.readline().decode().strip()
        if args.announce:
            with open(args.announce + ".new", "w") as a:
                a.write(res["backend"] + "\n")
            os.rename(args.announce + ".new", args.announce)
        t.settimeout(args.stall)
        expect = bytearray()
        got = bytearray()
        end = time.monotonic() + args.seconds
        chunk = pattern[:args.chunk]
        step = args.chunk / float(args.rate)
        i = 0
        while time.monotonic() < end:
            if args.until and os.path.exists(args.until):
                break
            # rotate the pattern so misordered or foreign bytes show
            piece = chunk[i % len(chunk):] + chunk[:i % len(chunk)]
            i += 7
            t.sendall(piece)
            expect += piece
            res["sent"] += len(piece)
            data = f.read1(len(piece))
            got += data
            while len(got) < len(expect) - 4 * args.chunk:
                more = f.read1(65536)
                if not more:
                    raise ConnectionError("closed by peer")
                got += more
            time.sleep(step)
        while len(got) < len(expect):
            more = f.read1(65536)
            if not more:
                raise ConnectionError("closed by peer")
            got += more
        res["received"] = len(got)
        res["equal"] = bytes(got) == bytes(expect)
        t.close()
    except Exception as e:  # noqa: BLE001 - reported to the caller
        res["error"] = "%s: %s" % (type(e).__name__, e)
        if "got" in locals():
            res["received"] = len(got)
    print(json.dumps(res), flush=True)
    ok = res["error"] is None and res["equal"] and res["sent"] > 0
    return 0 if ok else 1


def try_connect(args, results, idx):
    try:
        s = tcp_connect(args, 0, args.timeout)
        results[idx] = True
        s.close()
    except OSError:
        results[idx] = False


def cmd_burst(args):
    results = [None] * args.count
    threads = [threading.Thread(target=try_connect, args=(args, results, i))
               for i in range(args.count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n = sum(1 for r in results if r)
    print(json.dumps({"admitted": n, "refused": args.count - n}))
    return 0


def cmd_pace(args):
    total = int(args.seconds * args.rate)
    results = [None] * total
    threads = []
    start = time.monotonic()
    for i in range(total):
        delay = start + i / float(args.rate) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=try_connect, args=(args, results, i))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    n = sum(1 for r in results if r)
    per_second = [0] * int(args.seconds + 0.999)
    for i, r in enumerate(results):
        if r:
            per_second[int(i / args.rate)] += 1
    print(json.dumps({"admitted": n, "refused": total - n,
                      "per_second": per_second}))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vip", required=True)
    ap.add_argument("--port", type=int, default=6443)
    ap.add_argument("--src", default="")
    ap.add_argument("--sport", type=int, default=0)
    ap.add_argument("--sni", default="localhost")
    ap.add_argument("--cacert")
    ap.add_argument("--timeout", type=float, default=3.0)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("get")
    p = sub.add_parser("flows")
    p.add_argument("--sports", required=True, help="LO-HI")
    p = sub.add_parser("stream")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--rate", type=int, default=256 * 1024, help="bytes/s")
    p.add_argument("--chunk", type=int, default=4096)
    p.add_argument("--stall", type=float, default=5.0,
                   help="longest wait for an echo")
    p.add_argument("--announce", help="write the backend's name here once known")
    p.add_argument("--until", help="stop sending (before --seconds) once this file exists")
    p = sub.add_parser("burst")
    p.add_argument("--count", type=int, default=100)
    p = sub.add_parser("pace")
    p.add_argument("--rate", type=float, default=40)
    p.add_argument("--seconds", type=float, default=3)
    args = ap.parse_args()
    return {"get": cmd_get, "flows": cmd_flows, "stream": cmd_stream,
            "burst": cmd_burst, "pace": cmd_pace}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
