# Shared by train_stage{0,1,2}.sh (sourced, not run): environment defaults and the torchrun launch.
#
#   NPROC_PER_NODE (1)  NNODES (1)  NODE_RANK (0)  MASTER_ADDR (127.0.0.1)  MASTER_PORT (29500)
#   PRESET (humanml3d | kit | toy | smoke)   DATA_ROOT  TOKEN_CACHE (<DATA_ROOT>/token_cache)
#   LLM_BACKBONE  RESUME_LLM  ANNOT_DIR  OUT_DIR (experiments)  EXP_NAME  MAX_STEPS  PYTHON (python)
# Every argument given to the stage script is passed on to train_unified_sft.py (later flags win).

set -euo pipefail

SFT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python}"
NPROC_PER_NODE="${NPROC_PER_NODE:-1}"
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29500}"
PRESET="${PRESET:-humanml3d}"
DATA_ROOT="${DATA_ROOT:-}"
TOKEN_CACHE="${TOKEN_CACHE:-${DATA_ROOT:+${DATA_ROOT}/token_cache}}"
OUT_DIR="${OUT_DIR:-experiments}"
ANNOT_DIR="${ANNOT_DIR:-}"

require() {  # require NAME "what it is"
    if [ -z "${!1:-}" ]; then
        echo "error: set $1 ($2)" >&2
        exit 2
    fi
}

join_files() {  # join_files DIR name... -> DIR/a:DIR/b, each checked to exist
    local dir="$1" joined="" name
    shift
    for name in "$@"; do
        if [ ! -f "${dir}/${name}" ]; then
            echo "error: annotation file ${dir}/${name} not found (ANNOT_DIR=${ANNOT_DIR})" >&2
            exit 2
        fi
        joined="${joined:+${joined}:}${dir}/${name}"
    done
    printf '%s' "${joined}"
}

launch_sft() {  # launch_sft <args for train_unified_sft.py>: prints the command, then runs it with torchrun
    local cmd=("${PYTHON}" -m torch.distributed.run
        --nproc_per_node "${NPROC_PER_NODE}" --nnodes "${NNODES}" --node_rank "${NODE_RANK}"
        --master_addr "${MASTER_ADDR}" --master_port "${MASTER_PORT}"
        "${SFT_DIR}/train_unified_sft.py" "$@")
    printf '+'
    printf ' %q' "${cmd[@]}"
    printf '\n'
    exec "${cmd[@]}"
}
