#!/usr/bin/env bash
# Multi-process training with torchrun (one process per GPU; on a CPU-only
# machine the processes use gloo).
#   bash tools/dist_train.sh CONFIG NUM_PROCS [tools/train.py args...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT from the environment.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NUM_PROCS [train.py args...]" >&2
    exit 2
fi
CONFIG=$1
NPROCS=$2
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
exec python -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROCS" \
    "$HERE/train.py" "$CONFIG" --launcher pytorch "$@"
