#!/usr/bin/env python3
"""Throughput benchmark report: reads run.sh's rounds, writes the results
JSON (median and best of the rounds, ratios ours/baseline, machine), a
gnuplot data file, and prints the table."""
import json
import platform
import statistics
import subprocess
import sys
import time

raw_path, out_json, out_dat, commit = sys.argv[1:5]
rows = json.load(open(raw_path))

cpu = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break

cases = ["guard", "ratelimit", "forward"]
impls = ["ours", "nftables", "iptables"]
what = {
    "guard": "authorized-network drop (SYN from 64 outside sources, 520 prefixes)",
    "ratelimit": "per-source SYN limit drop (16 sources at 20/s, burst 40)",
    "forward": "established flows forwarded (1,024 flows, 4 backends)",
}
baseline = {
    "nftables": {
        "guard": "netdev ingress, ipv4_addr interval set, saddr != @set drop",
        "ratelimit": "netdev ingress, dynamic set, add @s { ip saddr limit rate over 20/second burst 40 packets } drop",
        "forward": "nat prerouting dnat to jhash ip saddr . tcp sport mod 4 map { ... } (conntrack, kernel forwarding)",
    },
    "iptables": {
        "guard": "iptables-legacy raw PREROUTING -m set ! --match-set (ipset hash:net) -j DROP",
        "ratelimit": "iptables-legacy raw PREROUTING --syn -m hashlimit --hashlimit-above 20/sec --hashlimit-burst 40 --hashlimit-mode srcip -j DROP",
    },
}


def agg(case, impl):
    v = [r["pps"] for r in rows if r["case"] == case and r["impl"] == impl]
    o = [r["offered_pps"] for r in rows if r["case"] == case and r["impl"] == impl]
    if not v:
        return None
    return {"median_pps": round(statistics.median(v)), "best_pps": max(v),
            "rounds_pps": v, "offered_median_pps": round(statistics.median(o))}


res = {"floor_xdp_drop": agg("xdp_drop", "floor"), "cases": {}}
for c in cases:
    res["cases"][c] = {"traffic": what[c], "results": {}, "ratios": {}}
    for i in impls:
        a = agg(c, i)
        if a is None:
            continue
        if i != "ours":
            a["config"] = baseline[i][c]
        res["cases"][c]["results"][i] = a
    ours = res["cases"][c]["results"].get("ours")
    for i in impls[1:]:
        b = res["cases"][c]["results"].get(i)
        if ours and b and b["median_pps"]:
            res["cases"][c]["ratios"]["ours/" + i] = {
                "median": round(ours["median_pps"] / b["median_pps"], 2),
                "best": round(ours["best_pps"] / b["best_pps"], 2)}

doc = {
    "benchmark": "throughput through an LB node (live traffic, veth)",
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "machine": {"uname": " ".join(platform.uname()), "cpu": cpu,
                "cpus": int(subprocess.check_output(["nproc"]).strip()),
                "load_average_at_end": open("/proc/loadavg").read().split()[:3]},
    "commit": commit,
    "method": "generator: XDP live frames (BPF_PROG_TEST_RUN) on CPU 0, 64-byte frames "
              "into a veth; LB node: threaded NAPI of its veth pinned to CPU 1; "
              "packets counted at the LB node (its drop/forward counters) over a "
              "fixed window while traffic runs; median and best of the rounds",
    "targets": {"guard drop / nftables": 4, "forward / nftables DNAT": 3},
    "results": res,
}
json.dump(doc, open(out_json, "w"), indent=1)

with open(out_dat, "w") as f:
    f.write("# case ours nftables iptables (median Mpps)\n")
    for c in cases:
        r = res["cases"][c]["results"]
        f.write(c + " " + " ".join(
            "%.3f" % (r[i]["median_pps"] / 1e6) if i in r else "0"
            for i in impls) + "\n")

fl = res["floor_xdp_drop"]
print("64-byte packets handled per second at the LB node (median of rounds; best)")
if fl:
    print("  floor, XDP_DROP at the node: %.2f Mpps (offered %.2f Mpps)"
          % (fl["median_pps"] / 1e6, fl["offered_median_pps"] / 1e6))
print("%-10s %-18s %-18s %-18s %s" % ("case", "ours", "nftables", "iptables",
                                       "ours/nft  ours/ipt"))
for c in cases:
    r = res["cases"][c]["results"]
    cell = lambda i: ("%.3f (%.3f)" % (r[i]["median_pps"] / 1e6,
                                      r[i]["best_pps"] / 1e6)) if i in r else "-"
    ra = res["cases"][c]["ratios"]
    print("%-10s %-18s %-18s %-18s %s  %s" % (
        c, cell("ours"), cell("nftables"), cell("iptables"),
        ra.get("ours/nftables", {}).get("median", "-"),
        ra.get("ours/iptables", {}).get("median", "-")))
