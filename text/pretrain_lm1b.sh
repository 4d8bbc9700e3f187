#!/usr/bin/env bash
# MDLM, or its autoregressive baseline, on LM1B with the paper's settings (configs/train/lm1b*.yaml):
# bert-base-uncased tokens, 128-token blocks, padded (one sentence per block) or wrapped, batch 512.
#   text/pretrain_lm1b.sh [mdlm|ar] [padded|wrapped] [KEY=VALUE ...]
set -euo pipefail
variant="${1:-mdlm}"
blocks="${2:-padded}"
shift $(( $# < 2 ? $# : 2 ))
case "$variant" in
  mdlm) preset=lm1b ;;
  ar) preset=lm1b-ar ;;
  *) echo "usage: $0 [mdlm|ar] [padded|wrapped] [KEY=VALUE ...]" >&2; exit 2 ;;
esac
case "$blocks" in
  padded) wrap=false ;;
  wrapped) wrap=true ;;
  *) echo "usage: $0 [mdlm|ar] [padded|wrapped] [KEY=VALUE ...]" >&2; exit 2 ;;
esac
exec mdlm-bio train "$preset" "data.wrap=$wrap" "run_dir=runs/lm1b-$blocks-$variant" "$@"
