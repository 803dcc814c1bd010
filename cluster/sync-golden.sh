#!/usr/bin/env bash
# Maintenance, not a test: compares the project's golden fixtures (Tests/GiftCoreTests/Fixtures/golden) with
# the team's shared golden set in the folder beside this checkout, and with --copy replaces the fixtures by
# it. The tests read only the project's copy, so a clone with nothing beside it passes.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${GOLDEN_SRC:-$(cd .. && pwd)/shared/golden}
DST=Tests/GiftCoreTests/Fixtures/golden
[ -d "$SRC" ] || { echo "sync-golden: no shared golden set at $SRC (set GOLDEN_SRC)" >&2; exit 2; }
if [ "${1:-}" = --copy ]; then rm -rf "$DST" && cp -r "$SRC" "$DST" && chmod -R u+w "$DST" && echo "copied $SRC to $DST"; exit 0; fi
if diff -r "$SRC" "$DST"; then echo "sync-golden: the fixtures match $SRC"; else echo "sync-golden: they differ; rerun with --copy and commit" >&2; exit 1; fi
