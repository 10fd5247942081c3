#!/usr/bin/env python3
"""by_line.py LINES SAMPLES [N]: the program's own samples by source line.

LINES: jit_lines output ("OFFSET FILE:LINE SOURCE"); SAMPLES: "COUNT OFFSET"
per JIT offset (perf script). A sample is charged to the last line starting
at or before its offset; a sample after a helper call lands on the line
that made the call. Prints the share of each file, then the N top lines."""
import bisect
import collections
import sys


def main():
    starts = []
    with open(sys.argv[1]) as f:
        for line in f:
            off, rest = line.rstrip("\n").split(" ", 1)
            loc, _, src = rest.partition(" ")
            starts.append((int(off, 16), loc, src.strip()))
    starts.sort()
    offsets = [s[0] for s in starts]
    by_line = collections.Counter()
    total = 0
    with open(sys.argv[2]) as f:
        for line in f:
            count, off = line.split()
            i = bisect.bisect_right(offsets, int(off, 16)) - 1
            if i < 0:
                continue
            by_line[starts[i][1:]] += int(count)
            total += int(count)
    if not total:
        sys.exit("by_line: no samples in the program")
    by_file = collections.Counter()
    for (loc, _), c in by_line.items():
        by_file[loc.split(":")[0]] += c
    print(f"{total} samples in the program")
    for name, c in by_file.most_common():
        print(f"{100 * c / total:5.1f}%  {name}")
    print()
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    for (loc, src), c in by_line.most_common(top):
        print(f"{100 * c / total:5.1f}%  {loc:26s} {src[:72]}")


if __name__ == "__main__":
    main()
