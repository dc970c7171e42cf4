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
