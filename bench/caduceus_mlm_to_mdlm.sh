#!/usr/bin/env bash
# A published Caduceus masked LM before and after MDLM fine-tuning on hg38, on Genomic Benchmarks (the DNA
# counterpart of text/glue_comparison.sh; MDLM Table 7 compares MLM and MDLM pretraining of Caduceus this way).
#   bench/caduceus_mlm_to_mdlm.sh [CKPT] [RUN_DIR]
# Defaults: hf:kuleshov-group/caduceus-ps_seqlen-131k_d_model-256_n_layer-16, runs/hg38-from-caduceus-mlm.
# Extra options per step, word-split: TRAIN_ARGS (mdlm-bio train hg38-from-mlm overrides), FINETUNE_ARGS
# (finetune genomic-benchmarks). Needs hg38 (mdlm-bio data hg38), the hub and, at this size, GPUs.
set -euo pipefail
ckpt=${1:-hf:kuleshov-group/caduceus-ps_seqlen-131k_d_model-256_n_layer-16}
run=${2:-runs/hg38-from-caduceus-mlm}
read -r -a train_args <<< "${TRAIN_ARGS:-}"
read -r -a finetune_args <<< "${FINETUNE_ARGS:-}"
mdlm-bio finetune genomic-benchmarks --ckpt "$ckpt" --run-dir "$run/genomic-benchmarks-before" "${finetune_args[@]}"
mdlm-bio train hg38-from-mlm init_from="$ckpt" run_dir="$run" "${train_args[@]}"
mdlm-bio finetune genomic-benchmarks --ckpt "$run" --run-dir "$run/genomic-benchmarks-after" "${finetune_args[@]}"
{
  echo "# $ckpt before and after MDLM fine-tuning on hg38 ($run)"
  for stage in before after; do
    echo; echo "## $stage"; echo; cat "$run/genomic-benchmarks-$stage/results.md"
  done
} > "$run/comparison.md"
echo "wrote $run/comparison.md"
