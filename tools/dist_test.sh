#!/usr/bin/env bash
# Multi-process testing:
#   bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [tools/test.py args...]
# (NNODES, NODE_RANK, MASTER_ADDR, PORT: see tools/dist_launch.sh)
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT NUM_PROCS [test.py args...]" >&2
    exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
CONFIG=$1
CHECKPOINT=$2
NPROCS=$3
shift 3
exec bash "$HERE/dist_launch.sh" "$HERE/test.py" "$NPROCS" "$CONFIG" \
    "$CHECKPOINT" "$@"
