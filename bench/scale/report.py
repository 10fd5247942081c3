#!/usr/bin/env python3
"""Scale benchmark report: wraps run.sh's figures with the date, machine and
commit into the results JSON and prints the tables."""
import json
import platform
import statistics
import subprocess
import sys
import time

raw_path, out_json, commit = sys.argv[1:4]
r = json.load(open(raw_path))
cpu = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
doc = {
    "benchmark": "control plane and scale",
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "machine": {"uname": " ".join(platform.uname()), "cpu": cpu,
                "cpus": int(subprocess.check_output(["nproc"]).strip()),
                "load_average_at_end": open("/proc/loadavg").read().split()[:3]},
    "commit": commit,
    "method": "agent in its own namespace on a veth; services of 3 backends "
              "with 16381-slot Maglev tables; memory is the kernel's memlock "
              "(fdinfo) of every pinned map plus the inner maps they hold; "
              "connection costs are BPF_PROG_TEST_RUN of the attached program "
              "with repeat 1 per frame (kernel-measured run time, each frame a "
              "different flow), minus the same for an empty XDP program; "
              "userspace bpf_map_lookup_elem/update_elem per call is the "
              "baseline (includes the syscall)",
    "results": r,
}
json.dump(doc, open(out_json, "w"), indent=1)

MiB = 1 << 20
print("validate 1,000 services (--check-config): median %s ms"
      % r["check_config_1000_ms"]["median"])
print("%-9s %-16s %-22s %-22s %s" % ("services", "start+apply ms",
      "PUT 1 change ms (med)", "file change->live ms", "map memory MiB"))
for s in r["services"]:
    flips = s["file_change_to_table_live_ms"]
    print("%-9d %-16d %-22.1f %-22s %.1f" % (
        s["services"], s["start_and_apply_ms"],
        statistics.median(s["put_one_backend_moved_ms"]),
        "%.0f (median)" % statistics.median(flips) if flips else "-",
        s["memory"]["total_memlock"] / MiB))
ct = r["conntrack"]
print("connection table (max %d entries, memlock %.1f MiB; total with it "
      "%.1f MiB)" % (ct["ct_max_entries"], ct["ct_memlock"] / MiB,
                     r["memory_with_1m_connections"]["total_memlock"] / MiB))
print("%-13s %-14s %-18s %-16s %s" % ("live entries", "hit ns (prog)",
      "new flow ns (prog)", "lookup ns (user)", "insert ns (user)"))
for p in ct["points"]:
    print("%-13d %-14d %-18d %-16d %d" % (
        p["live_entries"], p["prog_hit_above_floor_ns"],
        p["prog_new_flow_above_floor_ns"], p["user_lookup_ns"],
        p["user_insert_ns"]))
print("(prog: above the empty-program floor of %d ns per run)"
      % ct["points"][-1]["prog_floor_ns"]["median"])
