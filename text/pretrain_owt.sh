#!/usr/bin/env bash
# MDLM, or its autoregressive baseline, on OpenWebText with the paper's settings (configs/train/owt.yaml,
# owt-ar.yaml): DiT-small, 1024-token wrapped blocks, global batch 512 on 4 GPUs, 1M steps.
#   text/pretrain_owt.sh [mdlm|ar] [KEY=VALUE ...]
#   text/pretrain_owt.sh mdlm trainer.devices=8 trainer.accumulate_grad_batches=4   # 8 GPUs, same batch
set -euo pipefail
variant="${1:-mdlm}"
shift || true
case "$variant" in
  mdlm) preset=owt ;;
  ar) preset=owt-ar ;;
  *) echo "usage: $0 [mdlm|ar] [KEY=VALUE ...]" >&2; exit 2 ;;
esac
exec mdlm-bio train "$preset" "$@"
