#!/usr/bin/env bash
# Example evaluation launches for a stage-1 MotionLLM (IRG-MotionLLM Table 3: direct generation vs
# instructed refinement), plus M2T. Run from anywhere:
#
#   bash SFT/eval_stage1.sh table      # init-gen vs final-gen on the same repeats, one table (1 GPU)
#   bash SFT/eval_stage1.sh multigpu   # the same, generation sharded over all GPUs (torchrun)
#   bash SFT/eval_stage1.sh faithful   # upstream's decoding rules exactly (scores-based codes, exact stop)
#   bash SFT/eval_stage1.sh sampled    # sampling + motion-constrained decoding, with MultiModality
#   bash SFT/eval_stage1.sh m2t        # motion-to-text captions: BLEU/ROUGE/CIDEr/BERTScore + R-precision
#   bash SFT/eval_stage1.sh toy        # the toy world on a CPU (untrained vs trained checkpoint)
#
# Paths come from the environment (defaults: upstream's working-folder layout):
#   BACKBONE  gemma-2-2b-it folder          CKPT  stage-1 checkpoint (.pth, adapter or HF folder)
#   DATA      HumanML3D folder              VQ    VQ-VAE checkpoint
#   EVAL_DIR  folder holding checkpoints/t2m/ (Guo's evaluator zip) and glove/
#   NGPU      processes for torchrun (default: the GPUs nvidia-smi lists)
set -euo pipefail
cd "$(dirname "$0")/.."

BACKBONE=${BACKBONE:-checkpoints/gemma-2-2b-it}
CKPT=${CKPT:-output/stage1/ckpt_last.pth}
DATA=${DATA:-dataset/HumanML3D}
VQ=${VQ:-ckpt/vqvae.pth}
EVAL_DIR=${EVAL_DIR:-.}

common=(--preset humanml3d --llm-backbone "$BACKBONE" --llm-ckpt "$CKPT" --merge-lora
        --data-root "$DATA" --vq-ckpt "$VQ" --evaluator-dir "$EVAL_DIR" --glove-dir "$EVAL_DIR/glove")

case "${1:-table}" in
  table)
    python SFT/test_unified.py "${common[@]}" --eval-task t2m,direct_generation-instructed_refinement \
      --max-refine-round 5 --eval-batch-size 32 --eval-tag stage1
    ;;
  multigpu)
    NGPU=${NGPU:-$(nvidia-smi -L 2>/dev/null | wc -l)}
    torchrun --nproc_per_node "$NGPU" SFT/test_unified.py "${common[@]}" \
      --eval-task t2m,direct_generation-instructed_refinement --max-refine-round 5 --eval-batch-size 32
    ;;
  faithful)
    # upstream test_unified.py semantics: restricted-argmax code extraction, exact stop sentence
    python SFT/test_unified.py "${common[@]}" --eval-task direct_generation-instructed_refinement \
      --max-refine-round 5 --restricted-argmax --strict-stop-sentence --eval-tag faithful
    ;;
  sampled)
    python SFT/test_unified.py "${common[@]}" --eval-task t2m --do-sample --motion-constrained-decoding \
      --mm-num-texts 100 --eval-tag sampled
    ;;
  m2t)
    python SFT/test_m2t.py --llm-backbone "$BACKBONE" --llm-ckpt "$CKPT" --merge-lora --data-root "$DATA" \
      --vq-ckpt "$VQ" --evaluator-dir "$EVAL_DIR" --glove-dir "$EVAL_DIR/glove" \
      ${BERT:+--bert-model "$BERT"}
    ;;
  toy)
    TOY=${TOY:-data/toy}
    for ckpt in "" "${TOY_CKPT:-output/toy_stage1/hf_final}"; do
      label=untrained; [ -n "$ckpt" ] && label=trained
      python SFT/test_unified.py --preset toy --data-root "$TOY" \
        --llm-backbone "${TOY_BACKBONE:-checkpoints/tiny_gemma2_toy}" ${ckpt:+--llm-ckpt "$ckpt"} \
        --vq-ckpt "${TOY_VQ:-output/VQVAE_toy/vqvae.pt}" --evaluator-dir "${TOY_EVAL:-output/evaluator_toy}" \
        --glove-dir "${TOY_GLOVE:-$TOY/glove}" --eval-task t2m,direct_generation-instructed_refinement \
        --results-dir "output/eval_toy/$label"
    done
    python SFT/test_unified.py --compare output/eval_toy/untrained output/eval_toy/trained \
      --results-dir output/eval_toy
    ;;
  *)
    echo "usage: $0 [table|multigpu|faithful|sampled|m2t|toy]" >&2
    exit 2
    ;;
esac
