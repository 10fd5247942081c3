#!/usr/bin/env bash
# Runs every test: installs what is missing, builds into build/, runs the
# tests registered with meson (tests/*/meson.build: the criterion suites and
# the integration scripts) through `meson test`, runs the sanitizer pass from
# build-asan/, and ends with one line "N passed, N failed" summing them all:
# each criterion test (from its suite's "Synthesis:" line) and each
# integration script.
#
# AETH_TEST_SUITES="unit ctl" runs only those meson suites (default
# "criterion integration": everything; the names are in tests/meson.build),
# in both passes. AETH_SKIP_ASAN=1 skips the sanitizer pass.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh || { echo "test.sh: installing dependencies failed"; exit 1; }
if [ ! -f build/build.ninja ]; then
	meson setup build >/dev/null || { echo "test.sh: meson setup failed"; exit 1; }
fi
ninja -C build || { echo "test.sh: build failed"; echo "0 passed, 1 failed"; exit 1; }

suites=${AETH_TEST_SUITES:-criterion integration}
passed=0
failed=0

# tally LOG [--sanitizers] [--check-registered]: adds meson's JSON test log
# (one object per test and line) to the totals. A criterion suite counts its
# "Synthesis:" line (Passing; Failing, crashes included), or one failure if it
# printed none (it crashed or timed out); an integration script (run by
# bash) counts one, passed if it exited 0. --sanitizers: a sanitizer report
# in a criterion suite's output counts one failure more (a leak found as a
# test process exits fails no test). --check-registered: every
# tests/*/test_*.c (a criterion suite) and tests/integration/test_*.sh must
# be a registered test, or it counts one failure. Prints what it found, then
# "counts PASSED FAILED".
tally() {
	python3 - "$@" <<-'EOF'
	import glob, json, os, re, subprocess, sys

	log, opts = sys.argv[1], sys.argv[2:]
	passed = failed = 0

	def say(msg):
	    print('test.sh: ' + msg)

	report = re.compile(r'ERROR: (Address|Leak)Sanitizer|runtime error:')
	with open(log) as f:
	    for line in f:
	        t = json.loads(line)
	        name, res = t['name'].split(' / ')[-1], t['result']
	        out = t.get('stdout') or ''
	        out += t.get('stderr') or ''
	        if os.path.basename(t['command'][0]) == 'bash':
	            if res == 'OK':
	                passed += 1
	            else:
	                say(f'{name} failed ({res})')
	                failed += 1
	            continue
	        syn = [l for l in out.splitlines() if 'Synthesis:' in l]
	        if not syn:
	            say(f'{name} printed no synthesis ({res}, '
	                f'exit {t["returncode"]})')
	            failed += 1
	        else:
	            n = {k: int(v) for k, v in re.findall(
	                r'(Passing|Failing|Crashing): ([0-9]+)', syn[-1])}
	            # Failing includes Crashing (criterion 2.4 counts a
	            # crashed test in both)
	            passed += n.get('Passing', 0)
	            failed += n.get('Failing', 0)
	        if '--sanitizers' in opts and report.search(out):
	            say(f'{name}: sanitizer report')
	            failed += 1

	if '--check-registered' in opts:
	    tests = json.loads(subprocess.run(
	        ['meson', 'introspect', 'build', '--tests'],
	        capture_output=True, text=True, check=True).stdout)
	    known = {t['name'] for t in tests}
	    known |= {os.path.basename(c) for t in tests for c in t['cmd']}
	    for path in sorted(glob.glob('tests/*/test_*.c') +
	                       glob.glob('tests/integration/test_*.sh')):
	        name = os.path.basename(path)
	        if name.endswith('.c'):
	            name = name[:-2]
	        if name not in known:
	            say(f'{path} is not registered with test() '
	                f'in its meson.build')
	            failed += 1

	print(f'counts {passed} {failed}')
	EOF
}

# run_tests BUILD_DIR [TALLY OPTIONS] -- [MESON TEST ARGUMENTS]: runs
# `meson test` in BUILD_DIR (one test at a time, every test's output on
# stdout as it runs), then adds its log to the totals.
run_tests() {
	local dir=$1 opts=() out counts
	shift
	while [ "$1" != -- ]; do opts+=("$1"); shift; done
	shift
	# a log left by an earlier run must not be counted again
	rm -f "$dir/meson-logs/testsh.json"
	echo "=== meson test -C $dir $*"
	meson test -C "$dir" --num-processes 1 --verbose --logbase testsh "$@"
	if [ ! -s "$dir/meson-logs/testsh.json" ]; then
		echo "test.sh: meson test -C $dir ran no test (build failed?)"
		failed=$((failed + 1))
		return
	fi
	out=$(tally "$dir/meson-logs/testsh.json" "${opts[@]}")
	counts=$(sed -n 's/^counts \([0-9]*\) \([0-9]*\)$/\1 \2/p' <<<"$out")
	grep -v '^counts ' <<<"$out"
	if [ -z "$counts" ]; then
		echo "test.sh: could not read $dir/meson-logs/testsh.json"
		failed=$((failed + 1))
		return
	fi
	passed=$((passed + ${counts% *}))
	failed=$((failed + ${counts#* }))
}

suite_args=()
for s in $suites; do suite_args+=(--suite "$s"); done
check=()
[ -z "${AETH_TEST_SUITES:-}" ] && check=(--check-registered)

# Everything (or AETH_TEST_SUITES) from build/. build/ is built: no rebuild.
run_tests build "${check[@]}" -- --no-rebuild "${suite_args[@]}"

# Sanitizers: suite 'asan' (the unit, agent, ctl and ops suites, and
# test_hard_security.sh) again from build-asan/, built with AddressSanitizer
# and UndefinedBehaviorSanitizer; the suites and the script that start
# aether-agent and aetherctl start the sanitized binaries. `meson test`
# builds what those tests need; ASAN_OPTIONS and UBSAN_OPTIONS are set by
# the tests themselves (tests/meson.build). With AETH_TEST_SUITES, only the
# 'asan' tests also in those suites.
if [ "${AETH_SKIP_ASAN:-0}" != 1 ]; then
	if [ ! -f build-asan/build.ninja ]; then
		meson setup build-asan -Db_sanitize=address,undefined \
			-Db_lundef=false >/dev/null
	fi
	asan_args=(--suite asan)
	if [ -f build-asan/build.ninja ] && [ -n "${AETH_TEST_SUITES:-}" ]; then
		# names of the tests in 'asan' and in one of $suites, from
		# build-asan/ reconfigured if a meson.build changed
		ninja -C build-asan build.ninja >/dev/null
		mapfile -t asan_args < <(meson introspect build-asan --tests |
			python3 -c '
import json, sys
want = set(sys.argv[1:])
for t in json.load(sys.stdin):
    s = {x.split(":")[-1] for x in t["suite"]}
    if "asan" in s and s & want:
        print(t["name"])' $suites)
	fi
	if [ ! -f build-asan/build.ninja ]; then
		echo "test.sh: sanitizer build: meson setup failed"
		failed=$((failed + 1))
	elif [ ${#asan_args[@]} -eq 0 ]; then
		echo "test.sh: no sanitizer test in suites: $suites"
	else
		# sanitized processes run about three times slower
		run_tests build-asan --sanitizers -- --timeout-multiplier 3 \
			"${asan_args[@]}"
	fi
fi

echo
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
