#!/usr/bin/env python3
# Hand-made tunnel probes for the integration tests: send a TCP SYN to
# VIP:PORT, either plain or inside an IPIP packet with chosen outer and inner
# sources, and report whether a SYN-ACK for it comes back to this host.
"""Usage: ipip_probe.py --vip ADDR --port N --listen-for SECONDS
                     [--tunnel-to NODE --outer-src ADDR] [--inner-src ADDR]
                     [--sport N] [--tries N]

Prints one JSON object: {"synack": true|false, "sent": N}. Needs root (raw
sockets). IPv4 only. Without --tunnel-to the SYN is sent plain (a control:
it shows the listener sees SYN-ACKs at all).
"""

import argparse
import json
import random
import select
import socket
import struct
import sys
import time


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload, ident):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident,
                      0x4000, 64, proto, 0, socket.inet_aton(src),
                      socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def tcp_syn(src, dst, sport, dport, seq):
    opts = struct.pack("!BBH", 2, 4, 1400)  # MSS
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, (5 + 1) << 4,
                      0x02, 64240, 0, 0) + opts
    pseudo = struct.pack("!4s4sBBH", socket.inet_aton(src),
                         socket.inet_aton(dst), 0, 6, len(hdr))
    c = csum(pseudo + hdr)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:]


def synack_seen(sock, vip, port, sport, seq, deadline):
    while True:
        left = deadline - time.time()
        if left <= 0:
            return False
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            return False
        pkt = sock.recv(65535)
        ihl = (pkt[0] & 0xF) * 4
        if len(pkt) < ihl + 20 or socket.inet_ntoa(pkt[12:16]) != vip:
            continue
        s, d, _, ack = struct.unpack("!HHII", pkt[ihl:ihl + 12])
        flags = pkt[ihl + 13]
        if (s == port and d == sport and flags & 0x12 == 0x12 and
                ack == (seq + 1) & 0xFFFFFFFF):
            return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vip", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tunnel-to")
    ap.add_argument("--outer-src")
    ap.add_argument("--inner-src")
    ap.add_argument("--sport", type=int, default=0)
    ap.add_argument("--tries", type=int, default=3)
    ap.add_argument("--listen-for", type=float, default=2.0)
    a = ap.parse_args()

    sport = a.sport or random.randint(20000, 60000)
    seq = random.getrandbits(32)
    listen = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    send = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    send.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)

    inner_src = a.inner_src
    if not inner_src:  # the address this host would use towards the VIP
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.connect((a.vip, a.port))
        inner_src = probe.getsockname()[0]
        probe.close()
    syn = ipv4(inner_src, a.vip, 6,
               tcp_syn(inner_src, a.vip, sport, a.port, seq),
               random.getrandbits(16))
    if a.tunnel_to:
        pkt = ipv4(a.outer_src, a.tunnel_to, 4, syn, random.getrandbits(16))
        dst = a.tunnel_to
    else:
        pkt, dst = syn, a.vip
    seen = False
    for _ in range(a.tries):
        send.sendto(pkt, (dst, 0))
        if synack_seen(listen, a.vip, a.port, sport, seq,
                       time.time() + a.listen_for / a.tries):
            seen = True
            break
    print(json.dumps({"synack": seen, "sent": a.tries}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
