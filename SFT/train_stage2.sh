#!/usr/bin/env bash
# Stage 2 (IRMoGen CoT) skeleton: full fine-tuning from the stage-1 model on the interleaved
# generate-assess-refine traces, upstream's flags (--wo-lora --full-tuning --ignore-incorrect --wo-answer,
# batch 1/GPU, 20 epochs, a kept checkpoint every 2 epochs). The toy preset keeps its own batch size.
#
#   PRESET=toy DATA_ROOT=data/toy LLM_BACKBONE=checkpoints/tiny_gemma2_toy \
#     ANNOT_DIR=data/toy_annotations bash SFT/train_stage2.sh
#
# Files: ANNOT_DIR/stage-2/sft_motion_assess_cot_v2.json, or STAGE2_FILES. Environment: SFT/launch_common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/launch_common.sh"

require LLM_BACKBONE "the Gemma-2 folder, or the tiny one of prepare/make_tiny_llm.py"
require TOKEN_CACHE "token cache of prepare/build_token_cache.py (or set DATA_ROOT holding token_cache/)"
if [ -z "${STAGE2_FILES:-}" ]; then
    require ANNOT_DIR "folder of python -m data_engine.build_annotations"
    STAGE2_FILES="$(join_files "${ANNOT_DIR}/stage-2" sft_motion_assess_cot_v2.json)"
fi
RESUME_LLM="${RESUME_LLM:-${OUT_DIR}/${PRESET}_stage1/final}"
EXP_NAME="${EXP_NAME:-${PRESET}_stage2}"
args=(--preset "${PRESET}" --llm-backbone "${LLM_BACKBONE}" --resume-llm "${RESUME_LLM}"
      --token-cache "${TOKEN_CACHE}" --data-json-files "${STAGE2_FILES}" --out-dir "${OUT_DIR}"
      --exp-name "${EXP_NAME}" --resume-from auto --wo-lora --full-tuning --ignore-incorrect --wo-answer)
[ -n "${DATA_ROOT}" ] && args+=(--data-root "${DATA_ROOT}")
case "${PRESET}" in
    toy) args+=(--max-steps "${MAX_STEPS:-150}") ;;
    humanml3d | kit) args+=(--batch-size 1 --epochs-unified 20 --save-frequency 2) ;;
esac
[ -n "${MAX_STEPS:-}" ] && [ "${PRESET}" != "toy" ] && args+=(--max-steps "${MAX_STEPS}")
launch_sft "${args[@]}" "$@"
