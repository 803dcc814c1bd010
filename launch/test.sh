#!/usr/bin/env bash
# The test command: installs the Debian packages gift needs when they are missing, and the PyPI packages
# the cross-checks use into a venv outside the repository, then runs the whole suite. Tests run in
# release mode (numeric kernels are ~30x slower unoptimised) with -enable-testing so @testable imports
# work. Extra arguments go to `swift test` (e.g. --filter X).
set -euo pipefail
cd "$(dirname "$0")/.."
./launch/install-deps.sh
# The reference implementations the tests compare against (safetensors for the export check; HF
# tokenizers / transformers / jinja2 for the tokenizer and chat-template checks), in a venv of their own:
# GIFT_PYTHON names its interpreter for the tests. Without PyPI those checks are skipped with a reason.
VENV=${GIFT_TEST_VENV:-${TMPDIR:-/tmp}/gift-test-venv}
PYPKGS=(safetensors numpy tokenizers transformers jinja2)
if ! "$VENV/bin/python" -c 'import safetensors, numpy, tokenizers, transformers, jinja2' 2>/dev/null; then
  { python3 -m venv "$VENV" && "$VENV/bin/pip" install --quiet "${PYPKGS[@]}"; } \
    || echo "test.sh: could not install ${PYPKGS[*]} into $VENV; the checks against them will be skipped" >&2
fi
# PEFT and PyTorch for the LoRA check (LoRAPEFTTests), best effort: PyPI's torch wheel is large (CUDA
# libraries included); without it that check is skipped with the reason.
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import torch, peft' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet torch peft \
    || echo "test.sh: could not install torch and peft into $VENV; the PEFT check will be skipped" >&2
fi
# TensorBoard for the event-file check (TensorBoardTests reads gift's files back with it), best effort:
# without it that check is skipped with the reason.
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import tensorboard' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet tensorboard \
    || echo "test.sh: could not install tensorboard into $VENV; the TensorBoard check will be skipped" >&2
fi
# oneDNN 3.x for the check that gift drives its 3.x API as it does Debian's 2.6 (OneDNNLibraryTests loads
# it by GIFT_ONEDNN_LIB from the venv's lib/), best effort: PyPI's onednn-cpu-gomp (oneDNN 3.2 on GNU
# OpenMP, as Debian's 2.6 is); without it that check is skipped with the reason.
if [ -x "$VENV/bin/python" ] && [ ! -e "$VENV/lib/libdnnl.so.3" ]; then
  "$VENV/bin/pip" install --quiet onednn-cpu-gomp==2023.2.0 \
    || echo "test.sh: could not install onednn-cpu-gomp into $VENV; the oneDNN 3.x check will be skipped" >&2
fi
if "$VENV/bin/python" -c 'import safetensors' 2>/dev/null; then export GIFT_PYTHON="$VENV/bin/python"; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1
exec swift test -c release -Xswiftc -enable-testing "$@"
