#!/usr/bin/env bash
# Multi-process training:
#   bash tools/dist_train.sh CONFIG NUM_PROCS [tools/train.py args...]
# (NNODES, NODE_RANK, MASTER_ADDR, PORT: see tools/dist_launch.sh)
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NUM_PROCS [train.py args...]" >&2
    exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
CONFIG=$1
NPROCS=$2
shift 2
exec bash "$HERE/dist_launch.sh" "$HERE/train.py" "$NPROCS" "$CONFIG" "$@"
