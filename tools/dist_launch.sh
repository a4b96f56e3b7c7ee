#!/usr/bin/env bash
# torchrun launcher behind dist_train.sh and dist_test.sh: one process per
# GPU (gloo processes on a CPU-only machine).
#   bash tools/dist_launch.sh TOOL.py NUM_PROCS [tool args...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT from the environment.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 TOOL.py NUM_PROCS [tool args...]" >&2
    exit 2
fi
TOOL=$1
NPROCS=$2
shift 2
exec python -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROCS" \
    "$TOOL" --launcher pytorch "$@"
