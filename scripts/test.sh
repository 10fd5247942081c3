#!/usr/bin/env bash
# Runs every test: installs what is missing, builds into build/, runs the
# criterion suites and the integration scripts, and ends with one line
# "N passed, N failed" summing them all.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh || { echo "test.sh: installing dependencies failed"; exit 1; }
if [ ! -f build/build.ninja ]; then
	meson setup build >/dev/null || { echo "test.sh: meson setup failed"; exit 1; }
fi
ninja -C build || { echo "test.sh: build failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0

# Runs one criterion binary (label, then the command) and adds its
# "Synthesis" line to the totals. Sets suite_out to its output.
run_suite() {
	local label=$1 rc line p f c
	shift
	echo "=== $label"
	suite_out=$("$@" --jobs 1 2>&1)
	rc=$?
	printf '%s\n' "$suite_out"
	line=$(printf '%s\n' "$suite_out" | grep 'Synthesis:' | tail -n 1)
	if [ -z "$line" ]; then
		echo "test.sh: $label printed no synthesis (exit $rc)"
		failed=$((failed + 1))
		return
	fi
	p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$line")
	f=$(sed -n 's/.*Failing: \([0-9]*\).*/\1/p' <<<"$line")
	c=$(sed -n 's/.*Crashing: \([0-9]*\).*/\1/p' <<<"$line")
	passed=$((passed + p))
	failed=$((failed + f + c))
}

# Criterion suites: every test_* binary under build/tests.
while IFS= read -r bin; do
	run_suite "${bin#build/}" "$bin"
done < <(find build/tests -type f -name 'test_*' -perm -u+x | sort)

# Sanitizers: the agent's and the CLI's suites again from build-asan/, built
# with AddressSanitizer and UndefinedBehaviorSanitizer; the suites that start
# aether-agent and aetherctl start the sanitized binaries. A sanitizer
# report ends the test process (a failed test), and any report in a suite's
# output counts one more failure. AETH_SKIP_ASAN=1 skips this pass.
if [ "${AETH_SKIP_ASAN:-0}" != 1 ]; then
	asan_dirs='tests/(unit|ctl|ops|agent)'
	if [ ! -f build-asan/build.ninja ]; then
		meson setup build-asan -Db_sanitize=address,undefined \
			-Db_lundef=false >/dev/null
	fi
	asan_targets=$(ninja -C build-asan -t targets all 2>/dev/null |
		grep -oE "^(${asan_dirs}/test_[a-z0-9_]*|agent/aether-agent|agent/aetherctl):" |
		tr -d :)
	if [ -z "$asan_targets" ] || ! ninja -C build-asan $asan_targets; then
		echo "test.sh: sanitizer build failed"
		failed=$((failed + 1))
	else
		while IFS= read -r bin; do
			run_suite "${bin} (sanitizers)" env \
				ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
				UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
				"$bin"
			# a leak found as a test process exits fails no test
			if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
				<<<"$suite_out"; then
				echo "test.sh: ${bin}: sanitizer report"
				failed=$((failed + 1))
			fi
		done < <(find build-asan/tests -type f -name 'test_*' -perm -u+x |
			 grep -E "^build-asan/${asan_dirs}/" | sort)
		# and the sanitized agent under hostile API clients
		echo "=== tests/integration/test_hard_security.sh (sanitizers)"
		if AETH_BUILD=build-asan timeout 300 \
			bash tests/integration/test_hard_security.sh; then
			passed=$((passed + 1))
		else
			echo "test.sh: sanitized test_hard_security.sh failed"
			failed=$((failed + 1))
		fi
	fi
fi

# Integration scripts: each makes its own namespaces, cleans up, and exits 0
# on success.
for t in tests/integration/test_*.sh; do
	[ -e "$t" ] || continue
	echo "=== $t"
	if timeout 900 bash "$t"; then
		passed=$((passed + 1))
	else
		echo "test.sh: $t failed"
		failed=$((failed + 1))
	fi
done

echo
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
