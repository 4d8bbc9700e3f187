#!/usr/bin/env bash
# MDLM section 4, whole: a pretrained masked LM before and after MDLM fine-tuning, as a generative model (its C4
# perplexity bound, 128-token blocks) and as an encoder (GLUE, the paper's table beside ours).
#   text/glue_comparison.sh [ENCODER] [RUN_DIR]   (defaults: hf:bert-base-uncased, runs/mlm-mdlm)
# Extra options per step, word-split: TRAIN_ARGS (mdlm-bio train mlm-mdlm overrides), PPL_ARGS (eval-ppl),
# GLUE_ARGS (finetune glue), e.g. GLUE_ARGS="--datasets rte mrpc --seeds 1" for a quick look.
# At the paper's scale this needs the hub (model, C4, GLUE) and GPUs: MDLM fine-tuning is 5k steps at batch 512.
set -euo pipefail
encoder=${1:-hf:bert-base-uncased}
run=${2:-runs/mlm-mdlm}
read -r -a train_args <<< "${TRAIN_ARGS:-}"
read -r -a ppl_args <<< "${PPL_ARGS:---corpora c4}"
read -r -a glue_args <<< "${GLUE_ARGS:-}"
mdlm-bio eval-ppl --ckpt "$encoder" --block 128 --out-dir "$run/perplexity-before" "${ppl_args[@]}"
mdlm-bio train mlm-mdlm init_from="$encoder" run_dir="$run" "${train_args[@]}"
mdlm-bio eval-ppl --ckpt "$run" --block 128 --out-dir "$run/perplexity-after" "${ppl_args[@]}"
mdlm-bio finetune glue --ckpt "$encoder" --run-dir "$run/glue-before" "${glue_args[@]}"
mdlm-bio finetune glue --ckpt "$run" --run-dir "$run/glue-after" "${glue_args[@]}"
{
  echo "# $encoder before and after MDLM fine-tuning ($run)"
  for stage in before after; do
    echo; echo "## Perplexity bound, $stage"; echo; cat "$run/perplexity-$stage/perplexity.md"
  done
  for stage in before after; do
    echo; echo "## GLUE, $stage"; echo; cat "$run/glue-$stage/results.md"
  done
} > "$run/comparison.md"
echo "wrote $run/comparison.md"
