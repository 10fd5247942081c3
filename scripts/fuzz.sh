#!/usr/bin/env bash
# Long fuzz runs: packets through the real XDP program (BPF_PROG_TEST_RUN,
# invariants on every packet) and the libFuzzer target of the configuration
# parser and validator, from the seed corpus in tests/fuzz/corpus/.
#
#   scripts/fuzz.sh                      both: 1,000,000 packets, 600 s config
#   scripts/fuzz.sh packets [N [SEED]]   the packet fuzzer only
#   scripts/fuzz.sh config [SECONDS]     the libFuzzer target only
#
# Builds into build-hard/ (packets) and build-fuzz/ (clang, -Dfuzz=true).
# The libFuzzer corpus grows in build-fuzz/corpus-config (the seeds in git
# stay as they are); a crash is saved under build-fuzz/artifacts/ and the
# script exits non-zero: turn it into a test in tests/unit/test_config.c.
set -uo pipefail
cd "$(dirname "$0")/.."

build_hard() {
	if [ ! -f build-hard/build.ninja ]; then
		meson setup build-hard >/dev/null || return 1
	fi
	ninja -C build-hard tests/fuzz/fuzz_packets >/dev/null
}

build_fuzz() {
	if [ ! -f build-fuzz/build.ninja ]; then
		CC=clang meson setup build-fuzz -Dfuzz=true >/dev/null || return 1
	fi
	ninja -C build-fuzz tests/unit/fuzz_config >/dev/null
}

run_packets() {
	local n=${1:-1000000} seed=${2:-}

	build_hard || { echo "fuzz.sh: building fuzz_packets failed"; return 1; }
	echo "== packet fuzz: $n packets"
	# shellcheck disable=SC2086
	build-hard/tests/fuzz/fuzz_packets "$n" $seed
}

run_config() {
	local secs=${1:-600} corpus=build-fuzz/corpus-config rc

	build_fuzz || { echo "fuzz.sh: building fuzz_config failed"; return 1; }
	mkdir -p "$corpus" build-fuzz/artifacts
	cp -n tests/fuzz/corpus/config/* "$corpus"/
	echo "== config fuzz: ${secs} s, corpus $corpus"
	# -rss_limit_mb: a document is bounded, so is what parsing it may take
	ASAN_OPTIONS=detect_leaks=1 \
	build-fuzz/tests/unit/fuzz_config "$corpus" \
		-max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 \
		-timeout=10 -print_final_stats=1 \
		-artifact_prefix=build-fuzz/artifacts/ 2>&1 |
		grep -E '^#[0-9]+ +(DONE|pulse)|^stat::|ERROR|SUMMARY|Test unit written|^==' 
	rc=${PIPESTATUS[0]}
	[ "$rc" -eq 0 ] || echo "fuzz.sh: fuzz_config found a problem (exit $rc)"
	return "$rc"
}

case "${1:-all}" in
packets) shift; run_packets "$@" ;;
config) shift; run_config "$@" ;;
all)
	rc=0
	run_packets || rc=1
	run_config || rc=1
	exit $rc
	;;
*) echo "usage: $0 [packets [N [SEED]] | config [SECONDS]]" >&2; exit 2 ;;
esac
