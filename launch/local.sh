#!/usr/bin/env bash
# Runs `gift train` as N MPI ranks on this machine: launch/local.sh N [gift train arguments...]
# Each rank gets cores/N OpenBLAS threads (at least 1); more ranks than cores oversubscribe.
# Example: launch/local.sh 2 --objective gift --out runs/two-ranks
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:?usage: launch/local.sh N [gift train arguments]}"; shift
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "launch/local.sh: N must be a positive integer, got '$N'" >&2; exit 2; }
./launch/install-deps.sh
[ -x .build/release/gift ] || swift build -c release
CORES=$(nproc)
THREADS=$(( CORES / N )); [ "$THREADS" -ge 1 ] || THREADS=1
ROOT=(); [ "$(id -u)" -eq 0 ] && ROOT=(--allow-run-as-root)
export OMPI_MCA_pml="${OMPI_MCA_pml:-ob1}"   # ~0.1 s start-up instead of ~0.3 s on one node
exec mpirun "${ROOT[@]}" -np "$N" --oversubscribe --bind-to none \
  -x OPENBLAS_NUM_THREADS="$THREADS" -x OMPI_MCA_pml \
  .build/release/gift train "$@"
