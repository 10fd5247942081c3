#!/usr/bin/env bash
# A bounded libFuzzer run (60 s) of the configuration parser and validator
# from the seed corpus: any crash, leak, sanitizer report or timeout fails.
# Longer runs: scripts/fuzz.sh config SECONDS.
set -uo pipefail
cd "$(dirname "$0")/../.."

if ! scripts/fuzz.sh config "${AETH_FUZZ_SECONDS:-60}"; then
	echo "FAIL hard_fuzz_config"
	exit 1
fi
echo "PASS hard_fuzz_config"
