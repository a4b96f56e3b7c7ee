#!/usr/bin/env bash
# Install mixreorg-mmseg with the tested dependency set and run the main job.
#
#   bash tools/quickstart.sh
#
# 1. creates a virtual environment ($VENV, default .venv; reused if present)
#    and installs the package (editable) with requirements/ci.txt as pip
#    constraints (mmcv-lite: CPU; see docs/install.md for GPU machines);
# 2. the main job: writes the synthetic image-caption world (webdataset
#    shards + a segmentation set), trains a tiny MixReorg on its captions
#    with tools/train.py (zero-shot validation on the seen shape pairs
#    after every epoch), chooses the zero-shot head's background threshold
#    for the best checkpoint on the seen pairs (the validation split), tests
#    it zero-shot on the world's held-out shape pairs with tools/test.py
#    (IoUMetric), and draws one test image with the model's groups and class
#    mask.
# Set SKIP_MAIN_JOB=1 to install only.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
# --no-compile: Python compiles a module's bytecode when it is first
# imported; pip would compile all ~17,600 installed files one after the
# other (about 2 CPU minutes), most of which nothing here imports
"$PY" -m pip install --quiet --disable-pip-version-check --no-compile \
    -c requirements/ci.txt -e ".[lite,tests]"
"$PY" -c "import mixreorg_mmseg, mmseg, mmcv, torch; print(
    f'installed mixreorg_mmseg {mixreorg_mmseg.__version__}: mmseg '
    f'{mmseg.__version__}, mmcv {mmcv.__version__}, torch {torch.__version__}')"

[ "${SKIP_MAIN_JOB:-0}" = 1 ] && exit 0

CONFIG=configs/synthetic_world/mixreorg_tiny_synthetic-world-64x64.py
WORK_DIR=work_dirs/synthetic_world
"$PY" tools/misc/make_synthetic_world.py data/synthetic_world
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
# the checkpoint with the best validation mIoU (seen pairs; MMEngine's
# save_best): the held-out pairs take no part in the choice
CHECKPOINT=$(ls -t "$WORK_DIR"/best_mIoU_epoch_*.pth | head -n 1)
# --tta: each image at three sides, each also flipped, the views' class
# maps averaged (the config's tta_pipeline, chosen on the seen pairs)
# in a folder of its own: tools/test.py dumps the config it runs into the
# work dir under the config's file name
CALIBRATED="$WORK_DIR/calibrated/$(basename "$CONFIG" .py)_calibrated.py"
"$PY" tools/analysis_tools/calibrate_background.py "$CONFIG" "$CHECKPOINT" \
    --work-dir "$WORK_DIR" --out-config "$CALIBRATED"
"$PY" tools/test.py "$CALIBRATED" "$CHECKPOINT" --work-dir "$WORK_DIR" --tta
"$PY" tools/visualize_groups.py data/synthetic_world/images/unseen/00000.jpg \
    "$CALIBRATED" "$CHECKPOINT" --device cpu --out "$WORK_DIR/groups.png" \
    --classes "$(tail -n +2 data/synthetic_world/classes.txt | paste -sd,)"
