#!/usr/bin/env python3
"""verifier_lines.py LOG [N]: the verifier's work by source line.

LOG is a level-2 verifier log (verifier_log OBJ PROG 2 LOG). Each
processed instruction ("INSN: (op) ...") is charged to the source line the
log last named for it ("; SOURCE @ FILE:LINE"); prints the N lines with
the most processed instructions. A line the verifier walks often is one
reached on many paths that it could not prune: a candidate for a global
function (verified once) or for fewer paths. The log is the kernel's last
1 GiB when longer (a program over the limit): shares, not totals."""
import collections
import re
import sys

insn = re.compile(r'^(\d+): \(')
note = re.compile(r'^; (.*) @ (\S+):(\d+)$')
count = collections.Counter()
line_of = {}
last = None
with open(sys.argv[1], errors='replace') as f:
    for text in f:
        m = insn.match(text)
        if m:
            i = int(m.group(1))
            count[i] += 1
            if last and i not in line_of:
                line_of[i] = last
            continue
        m = note.match(text.rstrip())
        if m:
            last = (f'{m.group(2)}:{m.group(3)}', m.group(1).strip()[:64])
by_line = collections.Counter()
for i, c in count.items():
    by_line[line_of.get(i, ('?', ''))] += c
total = sum(count.values()) or 1
print(f'{total} processed instructions in the log')
for (where, src), c in by_line.most_common(int(sys.argv[2]) if len(sys.argv) > 2 else 30):
    print(f'{100.0 * c / total:5.1f}%  {where:26s} {src}')
