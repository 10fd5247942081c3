#!/usr/bin/env bash
# `meson install --destdir` lays aether-lb out like a system tool: the daemon
# in sbin, aetherctl in bin, man pages that list every option of --help,
# aetherctl's bash completion (which completes objects, verbs and options),
# the systemd unit pointing at the installed daemon, and an example document
# the installed agent accepts.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

BUILD=${AETH_BUILD:-build}
dest=$(mktemp -d "/tmp/aeth-install-$$.XXXXXX")
trap 'rm -rf "$dest"' EXIT
failures=0

check() {
	if eval "$2"; then
		echo "ok   $1"
	else
		echo "FAIL $1"
		failures=$((failures + 1))
	fi
}

if ! meson install -C "$BUILD" --destdir "$dest" --no-rebuild >"$dest.log" 2>&1; then
	cat "$dest.log"
	rm -f "$dest.log"
	echo "FAIL meson install"
	exit 1
fi
rm -f "$dest.log"

prefix=$(meson introspect "$BUILD" --buildoptions |
	python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
root=$dest$prefix
agent=$root/sbin/aether-agent
ctl=$root/bin/aetherctl
man8=$root/share/man/man8

check "aether-agent in sbin" '[ -x "$agent" ] && [ ! -e "$root/bin/aether-agent" ]'
check "aetherctl in bin" '[ -x "$ctl" ]'
check "both report a version" \
	'"$agent" --version | grep -qE "^aether-agent [0-9.]+ \(commit ([0-9a-f]{12}|unknown)\)$" &&
	 "$ctl" --version | grep -qE "^aetherctl [0-9.]+ \(commit ([0-9a-f]{12}|unknown)\)$"'

# every option --help names is in the man page, and the page renders
for prog in "$agent" "$ctl"; do
	name=$(basename "$prog")
	page=$man8/$name.8
	check "$name.8 installed" '[ -s "$page" ]'
	text=$(sed 's/\\-/-/g' "$page")	# roff writes - as \-
	missing=""
	for opt in $("$prog" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
		grep -qF -- "$opt" <<<"$text" || missing="$missing $opt"
	done
	check "$name.8 has every option of --help${missing:+ (missing$missing)}" \
		'[ -z "$missing" ]'
	check "$name.8 carries the version" \
		'grep -qF -- "$("$prog" --version)" <<<"$text"'
	if command -v man >/dev/null; then
		check "$name.8 renders" \
			'MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q "^SYNOPSIS"'
	fi
done

# the completion, sourced in a bash that has the completion helpers
comp=$root/share/bash-completion/completions/aetherctl
check "bash completion installed" '[ -s "$comp" ]'
complete_words() {
	bash -c '
		. /usr/share/bash-completion/bash_completion 2>/dev/null
		# without the bash-completion package: its helper, reduced
		type _init_completion >/dev/null 2>&1 || _init_completion() {
			cur=${COMP_WORDS[COMP_CWORD]}
			prev=${COMP_WORDS[COMP_CWORD-1]}
			words=("${COMP_WORDS[@]}")
			cword=$COMP_CWORD
		}
		. "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_aetherctl; printf "%s\n" "${COMPREPLY[@]}"' _ "$comp" "$@" | sort | tr '\n' ' '
}
has_all() {
	local list=" $1" w
	shift
	for w; do [[ $list == *" $w "* ]] || return 1; done
}
all=$(complete_words "$ctl" "")
check "completes objects" \
	'[ "$(complete_words "$ctl" conn)" = "conntrack " ] &&
	 has_all "$all" acl backend conntrack explain maglev ratelimit service stats status'
check "completes after global options" \
	'[ "$(complete_words "$ctl" -j --pin-dir /x ratel)" = "ratelimit " ]'
check "completes verbs" '[ "$(complete_words "$ctl" maglev "")" = "show " ]'
touch "$dest/doc.json"
check "completes the file of config apply" \
	'[ "$(cd "$dest" && complete_words "$ctl" config apply doc)" = "doc.json " ]'
check "completes options" \
	'complete_words "$ctl" conntrack list --l | grep -q -- "--limit"'

unit=$root/lib/systemd/system/aether-agent.service
check "systemd unit installed" '[ -s "$unit" ]'
check "unit starts the installed daemon" \
	"grep -qx 'ExecStart=$prefix/sbin/aether-agent --config /etc/aether/config.json --log-format json' '$unit'"
if command -v systemd-analyze >/dev/null; then
	# verify against the unpacked tree: the unit names $prefix/sbin, which
	# exists only under $dest here
	sed "s|$prefix/sbin|$root/sbin|" "$unit" >"$dest/aether-agent.service"
	check "unit passes systemd-analyze verify" \
		'out=$(systemd-analyze verify "$dest/aether-agent.service" 2>&1);
		 ! grep -E "aether-agent.service.*(Unknown|Invalid|Failed|not executable)" <<<"$out"'
fi

example=$root/share/doc/aether-lb/examples/config.example.json
check "example document accepted by the installed agent" \
	'[ "$("$agent" --check-config "$example")" = ok ]'

[ "$failures" -eq 0 ] || { echo "test_install: $failures failed"; exit 1; }
echo "test_install: all passed"
