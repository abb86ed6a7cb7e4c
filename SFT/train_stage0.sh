#!/usr/bin/env bash
# Stage 0: the base motion LLM (text-to-motion + motion-to-text) on the stage-0 annotation files.
#
#   toy world, from the tiny random-init Gemma-2 (~3 min on 2 CPU cores):
#     PRESET=toy DATA_ROOT=data/toy LLM_BACKBONE=checkpoints/tiny_gemma2_toy \
#       ANNOT_DIR=data/toy_annotations bash SFT/train_stage0.sh
#   HumanML3D / KIT-ML (or use Motion-Agent's released base model instead):
#     NPROC_PER_NODE=8 PRESET=humanml3d DATA_ROOT=../HumanML3D LLM_BACKBONE=../gemma-2-2b-it \
#       ANNOT_DIR=data/annotations bash SFT/train_stage0.sh --deepspeed
#
# Files: ANNOT_DIR/stage-0/stage_0_{t2m,m2t}_annots.json (data engine), or STAGE0_FILES (':'-separated).
# RESUME_LLM (optional) = initial weights. Environment: see SFT/launch_common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/launch_common.sh"

require LLM_BACKBONE "the Gemma-2 folder, or the tiny one of prepare/make_tiny_llm.py"
require TOKEN_CACHE "token cache of prepare/build_token_cache.py (or set DATA_ROOT holding token_cache/)"
if [ -z "${STAGE0_FILES:-}" ]; then
    require ANNOT_DIR "folder of python -m data_engine.build_annotations"
    STAGE0_FILES="$(join_files "${ANNOT_DIR}/stage-0" stage_0_t2m_annots.json stage_0_m2t_annots.json)"
fi
EXP_NAME="${EXP_NAME:-${PRESET}_stage0}"
args=(--preset "${PRESET}" --llm-backbone "${LLM_BACKBONE}" --token-cache "${TOKEN_CACHE}"
      --data-json-files "${STAGE0_FILES}" --out-dir "${OUT_DIR}" --exp-name "${EXP_NAME}" --resume-from auto)
[ -n "${DATA_ROOT}" ] && args+=(--data-root "${DATA_ROOT}")
[ -n "${RESUME_LLM:-}" ] && args+=(--resume-llm "${RESUME_LLM}")
if [ "${PRESET}" = "toy" ]; then
    args+=(--max-steps "${MAX_STEPS:-500}")
elif [ -n "${MAX_STEPS:-}" ]; then
    args+=(--max-steps "${MAX_STEPS}")
fi
launch_sft "${args[@]}" "$@"
