#!/usr/bin/env bash
# Stage 1 (IRMoGen initialisation): full fine-tuning on the eight atomic-task files, starting from the
# stage-0 model (toy: OUT_DIR/toy_stage0/final) or Motion-Agent's checkpoint (RESUME_LLM; its LoRA 't2m'
# is loaded as 'shared' and merged, as upstream).
#
#   PRESET=toy DATA_ROOT=data/toy LLM_BACKBONE=checkpoints/tiny_gemma2_toy \
#     ANNOT_DIR=data/toy_annotations bash SFT/train_stage1.sh              # ~4 min on 2 CPU cores
#   NPROC_PER_NODE=8 PRESET=humanml3d DATA_ROOT=../HumanML3D LLM_BACKBONE=../gemma-2-2b-it \
#     RESUME_LLM=ckpt/motionllm.pth ANNOT_DIR=data/annotations bash SFT/train_stage1.sh
#
# Files: the eight ANNOT_DIR/stage-1/*_annots.json (data engine and authors' names), or STAGE1_FILES.
# Environment: see SFT/launch_common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/launch_common.sh"

require LLM_BACKBONE "the Gemma-2 folder, or the tiny one of prepare/make_tiny_llm.py"
require TOKEN_CACHE "token cache of prepare/build_token_cache.py (or set DATA_ROOT holding token_cache/)"
if [ -z "${STAGE1_FILES:-}" ]; then
    require ANNOT_DIR "folder of python -m data_engine.build_annotations (or the authors' annotations)"
    STAGE1_FILES="$(join_files "${ANNOT_DIR}/stage-1" M2T_motion_caption_annots.json \
        T2M_direct_generation_annots.json T2M_detailed_prompt_generation_annots.json \
        T2T_prompt_analysis_annots.json TM2T_assessment_analysis_annots.json \
        TM2T_refinement_instruction_annots.json TM2M_direct_refinement_annots.json \
        TM2M_instructed_motion_refinement_annots.json)"
fi
if [ "${PRESET}" = "toy" ] || [ "${PRESET}" = "smoke" ]; then
    RESUME_LLM="${RESUME_LLM:-${OUT_DIR}/${PRESET}_stage0/final}"
fi
require RESUME_LLM "stage-0 model folder or Motion-Agent's motionllm.pth"
EXP_NAME="${EXP_NAME:-${PRESET}_stage1}"
args=(--preset "${PRESET}" --llm-backbone "${LLM_BACKBONE}" --resume-llm "${RESUME_LLM}"
      --token-cache "${TOKEN_CACHE}" --data-json-files "${STAGE1_FILES}" --out-dir "${OUT_DIR}"
      --exp-name "${EXP_NAME}" --resume-from auto)
[ -n "${DATA_ROOT}" ] && args+=(--data-root "${DATA_ROOT}")
if [ "${PRESET}" = "toy" ]; then
    args+=(--max-steps "${MAX_STEPS:-650}")
elif [ -n "${MAX_STEPS:-}" ]; then
    args+=(--max-steps "${MAX_STEPS}")
fi
launch_sft "${args[@]}" "$@"
