#!/usr/bin/env bash
# The test command: installs the Debian packages gift needs when they are missing, then runs the
# whole suite. Tests run in release mode (numeric kernels are ~30x slower unoptimised) with
# -enable-testing so @testable imports work. Extra arguments go to `swift test` (e.g. --filter X).
set -euo pipefail
cd "$(dirname "$0")/.."
./launch/install-deps.sh
# the export test opens files with Python's safetensors package (numpy backend)
if ! python3 -c 'import safetensors, numpy' 2>/dev/null; then
  python3 -m pip install --quiet safetensors numpy || echo "test.sh: could not install python safetensors; that check will be skipped" >&2
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1
exec swift test -c release -Xswiftc -enable-testing "$@"
