#!/usr/bin/env bash
# Seeds the fuzz corpus with the captured fixtures (messages/ and flowspec/), each under six contexts (the first
# byte selects the context; 0x11 and 0x15 also select IPv6 for the raw FlowSpec NLRI decoder).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/decode
for f in ../tests/fixtures/messages/*.bin ../tests/fixtures/flowspec/*.bin; do
  b=$(basename "$f" .bin)
  case "$f" in *flowspec*) b="fs-$b";; esac
  for s in 00 01 03 05 11 15; do (printf "\x$s"; cat "$f") > "corpus/decode/$b-$s"; done
done
