#!/usr/bin/env bash
# Long fuzz runs: packets through the real XDP program (BPF_PROG_TEST_RUN,
# invariants on every packet) and the libFuzzer targets of the configuration
# parser and validator and of the API's request handling, from the seed
# corpora in tests/fuzz/corpus/.
#
#   scripts/fuzz.sh                      all: 1,000,000 packets, 600 s each
#   scripts/fuzz.sh packets [N [SEED]]   the packet fuzzer only
#   scripts/fuzz.sh config [SECONDS]     the config libFuzzer target only
#   scripts/fuzz.sh api [SECONDS]        the API libFuzzer target only
#
# Builds into build-hard/ (packets) and build-fuzz/ (clang, -Dfuzz=true).
# A libFuzzer corpus grows in build-fuzz/corpus-NAME (the seeds in git stay
# as they are); a crash is saved under build-fuzz/artifacts/ and the script
# exits non-zero: turn it into a test (tests/unit/test_config.c for the
# parser, tests/integration/test_hard_security.sh for the API).
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
	ninja -C build-fuzz tests/unit/fuzz_config tests/fuzz/fuzz_api >/dev/null
}

run_packets() {
	local n=${1:-1000000} seed=${2:-}

	build_hard || { echo "fuzz.sh: building fuzz_packets failed"; return 1; }
	echo "== packet fuzz: $n packets"
	# shellcheck disable=SC2086
	build-hard/tests/fuzz/fuzz_packets "$n" $seed
}

# run_libfuzzer NAME BINARY SECONDS
run_libfuzzer() {
	local name=$1 bin=$2 secs=$3 corpus=build-fuzz/corpus-$1 rc

	mkdir -p "$corpus" build-fuzz/artifacts
	cp -n "tests/fuzz/corpus/$name"/* "$corpus"/
	echo "== $name fuzz: ${secs} s, corpus $corpus"
	# -rss_limit_mb: a request is bounded, so is what handling it may take
	ASAN_OPTIONS=detect_leaks=1 \
	"$bin" "$corpus" \
		-max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 \
		-timeout=10 -print_final_stats=1 \
		-artifact_prefix="build-fuzz/artifacts/$name-" 2>&1 |
		grep -E '^#[0-9]+ +DONE|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)|ERROR|SUMMARY|Test unit written|^=='
	rc=${PIPESTATUS[0]}
	[ "$rc" -eq 0 ] || echo "fuzz.sh: $name fuzzing found a problem (exit $rc)"
	return "$rc"
}

run_config() {
	build_fuzz || { echo "fuzz.sh: building the fuzz targets failed"; return 1; }
	run_libfuzzer config build-fuzz/tests/unit/fuzz_config "${1:-600}"
}

run_api() {
	build_fuzz || { echo "fuzz.sh: building the fuzz targets failed"; return 1; }
	run_libfuzzer api build-fuzz/tests/fuzz/fuzz_api "${1:-600}"
}

case "${1:-all}" in
packets) shift; run_packets "$@" ;;
config) shift; run_config "$@" ;;
api) shift; run_api "$@" ;;
all)
	rc=0
	run_packets || rc=1
	run_config || rc=1
	run_api || rc=1
	exit $rc
	;;
*) echo "usage: $0 [packets [N [SEED]] | config [SECONDS] | api [SECONDS]]" >&2
   exit 2 ;;
esac
