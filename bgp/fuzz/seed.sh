#!/usr/bin/env bash
# Seeds the fuzz corpus with the captured fixtures, each under four contexts (first byte selects the context).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/decode
for f in ../tests/fixtures/messages/*.bin; do
  b=$(basename "$f" .bin)
  for s in 00 01 03 05; do (printf "\x$s"; cat "$f") > "corpus/decode/$b-$s"; done
done
