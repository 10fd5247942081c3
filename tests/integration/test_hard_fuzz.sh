#!/usr/bin/env bash
# Bounded libFuzzer runs from the seed corpora: the configuration parser and
# validator, and the API's request handling (45 s each). Any crash, leak,
# sanitizer report or timeout fails. Longer: scripts/fuzz.sh config|api SECONDS.
set -uo pipefail
cd "$(dirname "$0")/../.."

rc=0
scripts/fuzz.sh config "${AETH_FUZZ_SECONDS:-45}" || rc=1
scripts/fuzz.sh api "${AETH_FUZZ_SECONDS:-45}" || rc=1
if [ $rc -ne 0 ]; then
	echo "FAIL hard_fuzz"
	exit 1
fi
echo "PASS hard_fuzz"
