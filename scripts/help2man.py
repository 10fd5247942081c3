#!/usr/bin/env python3
"""Write a man page from a program's own --help and --version output, so
the page cannot say something the program does not (meson runs this at
build time for aether-agent.8 and aetherctl.8).

--help is read as: usage lines first, then paragraphs and sections. A line
ending in ':' at the left margin opens a section; in it, an indented line
whose text is followed by two or more spaces is an item (term, then
description) and lines indented further continue the description."""
import argparse
import re
import subprocess
import sys


def roff(text):
    """Escape text for roff: backslashes, leading dots and quotes, dashes."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def run(binary, arg):
    out = subprocess.run([binary, arg], capture_output=True, text=True,
                         check=True)
    return out.stdout


def split_usage(lines):
    """The usage block: the first lines up to a blank one."""
    usage = []
    while lines and lines[0].strip():
        line = re.sub(r"^(usage|Usage):\s*", "", lines.pop(0).strip())
        if usage and line.startswith("["):
            usage[-1] += " " + line     # a wrapped synopsis line
        else:
            usage.append(line)
    return usage


ITEM = re.compile(r"^(\s{1,4})(\S.*?)(\s{2,}(\S.*))?$")


def blocks(body):
    """Runs of non-blank lines."""
    cur = []
    for line in body + [""]:
        if line.strip():
            cur.append(line)
        elif cur:
            yield cur
            cur = []


def section(name, body, out):
    """A block of "term  description" lines becomes a tagged list, other
    indented blocks (tables such as aetherctl's objects) stay as they are,
    text at the margin is a paragraph."""
    out.append(".SH " + roff(name.upper()))
    for block in blocks(body):
        indented = all(l.startswith(" ") for l in block)
        items = [ITEM.match(l) for l in block]
        if indented and all(m and m.group(4) for m, l in zip(items, block)
                            if len(l) - len(l.lstrip()) <= 4):
            for m, line in zip(items, block):
                if len(line) - len(line.lstrip()) <= 4:
                    out += [".TP", ".B " + roff(m.group(2).strip())]
                    out.append(roff(m.group(4)))
                else:
                    out.append(roff(line.strip()))
        elif indented:
            out += [".PP", ".nf", ".RS 4"]
            out += [roff(l[2:] if l.startswith("  ") else l) for l in block]
            out += [".RE", ".fi"]
        else:
            out.append(".PP")
            out += [roff(l.strip()) for l in block]


def page(name, sec, help_text, version, extra):
    lines = help_text.rstrip("\n").split("\n")
    usage = split_usage(lines)
    out = ['.TH %s %s "" "%s" "aether-lb"' % (name.upper(), sec,
                                              roff(version.strip()))]
    out += [".SH NAME", roff(name) + " \\- " + roff(extra["summary"])]
    out.append(".SH SYNOPSIS")
    for i, u in enumerate(usage):
        if i:
            out.append(".br")
        out.append(roff(u))
    # the text before the first section is the description
    desc, sections, cur = [], [], None
    for line in lines:
        if re.match(r"^[A-Z][A-Za-z ]*:$", line):
            cur = (line[:-1], [])
            sections.append(cur)
        elif cur:
            cur[1].append(line)
        else:
            desc.append(line)
    while desc and not desc[0].strip():
        desc.pop(0)
    while desc and not desc[-1].strip():
        desc.pop()
    out.append(".SH DESCRIPTION")
    out += [roff(l.strip()) if l.strip() else ".PP" for l in desc]
    for title, body in sections:
        section(title, body, out)
    out.append(".SH VERSION")
    out.append(roff(version.strip()))
    out += [".SH SEE ALSO", roff(extra["see_also"])]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("output")
    ap.add_argument("--name", required=True)
    ap.add_argument("--section", default="8")
    ap.add_argument("--summary", required=True)
    ap.add_argument("--see-also", default="")
    a = ap.parse_args()
    text = page(a.name, a.section, run(a.binary, "--help"),
                run(a.binary, "--version"),
                {"summary": a.summary, "see_also": a.see_also})
    with open(a.output, "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
