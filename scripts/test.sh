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

# Criterion suites: every test_* binary under build/tests. Each prints its own
# "Synthesis" line; we add them up.
while IFS= read -r bin; do
	echo "=== ${bin#build/}"
	out=$("$bin" --jobs 1 2>&1)
	rc=$?
	printf '%s\n' "$out"
	line=$(printf '%s\n' "$out" | grep 'Synthesis:' | tail -n 1)
	if [ -z "$line" ]; then
		echo "test.sh: ${bin} printed no synthesis (exit $rc)"
		failed=$((failed + 1))
		continue
	fi
	p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$line")
	f=$(sed -n 's/.*Failing: \([0-9]*\).*/\1/p' <<<"$line")
	c=$(sed -n 's/.*Crashing: \([0-9]*\).*/\1/p' <<<"$line")
	passed=$((passed + p))
	failed=$((failed + f + c))
done < <(find build/tests -type f -name 'test_*' -perm -u+x | sort)

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
