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
# With STAMPS set to a file, the lines are also appended there.
stamp() { local line="[$((SECONDS - T0)) s] $*"; echo "$line"; [ -z "${STAMPS:-}" ] || echo "$line" >> "$STAMPS"; }
# Shots of both of issue 8's recipes at 192x144, one folder after the other: the ordinary one, then the consistency
# one. render_recipes DIR SEED CONSISTENCY_DIR CONSISTENCY_SEED SEQUENCES FRAMES WORKERS SECONDS_EACH
render_recipes() {
    timeout $8 $RD -q synth "$1" --sequences $5 --frames $6 --size 192x144 --seed $2 --workers $7 &&
    timeout $8 $RD -q synth "$3" --sequences $5 --frames $6 --size 192x144 --seed $4 --consistency --workers $7
}
# Issue 8's two test splits: the held-out recipe (seed 1) and the consistency recipe (seed 3), the scenes of the CPU
# renders the model card scores. render_test_splits SEQUENCES FRAMES WORKERS SECONDS_EACH
render_test_splits() { render_recipes "$W/test" 1 "$W/consistency_test" 3 "$@"; }
