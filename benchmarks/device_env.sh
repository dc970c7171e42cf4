# Shared set-up of the accelerator scripts (sourced): output and work folders, quiet unbuffered Python, the
# package from this checkout, the `rolldepth` command as $RD, and `stamp` for timed log lines.
# Expects WORK_DEFAULT to name the script's default work folder.
set -u
OUT=${OUT:-gpu_results}
W=${WORK:-$WORK_DEFAULT}
mkdir -p "$OUT" "$W"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1 PYTHONWARNINGS=ignore
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
RD="$PY -m rolldepth.apps.cli"
T0=$SECONDS
stamp() { echo "[$((SECONDS - T0)) s] $*"; }
# Issue 8's two test splits, one after the other: the held-out recipe (seed 1) and the consistency recipe (seed 3),
# the scenes of the CPU renders the model card scores. render_test_splits SEQUENCES FRAMES WORKERS SECONDS_EACH
render_test_splits() {
    timeout $4 $RD -q synth "$W/test" --sequences $1 --frames $2 --size 192x144 --seed 1 --workers $3 &&
    timeout $4 $RD -q synth "$W/consistency_test" --sequences $1 --frames $2 --size 192x144 --seed 3 \
        --consistency --workers $3
}
