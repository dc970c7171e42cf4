#!/usr/bin/env bash
# Score several models on issue 8's two 12-video test splits in a few minutes of an accelerator, instead of 30 CPU
# minutes per model: render both splits there (EGL; the same scenes and, as run 6 showed, the same scores to 1e-4 as
# the CPU renders), then run every `rolldepth eval` at once (one small model does not fill the GPU).
#   bash benchmarks/eval_splits_gpu.sh NAME=MODEL_DIR ...     # results.tgz in $OUT: NAME_{test,consistency}/eval.*
# The held-out split is scored per frame and by {1,10,25}, the consistency split also by {1} and {1,25} (the
# paper's ordering). Everything ends by DEADLINE seconds (200); a cut evaluation leaves its per-video log lines.
# SMOKE=1 rehearses it on the CPU with 2 short videos per split.
WORK_DEFAULT=/tmp/rolldepth-eval
source "$(dirname "$0")/device_env.sh"
left() { echo $(( ${DEADLINE:-200} - (SECONDS - T0) )); }
if [ "${SMOKE:-0}" = 1 ]; then SEQ=2 FR=12 DEV=cpu; else SEQ=12 FR=64 DEV=cuda; fi

stamp "render start"
render_test_splits $SEQ $FR 14 60
stamp "render done"

export OMP_NUM_THREADS=2
for spec in "$@"; do
    name=${spec%%=*} model=${spec#*=}
    timeout $(( $(left) - 10 )) $RD eval --data "$W/test" --kind synth -m "$model" -o "$OUT/${name}_test" \
        --variants "per-frame,{1,10,25}" --device $DEV > "$OUT/${name}_test.log" 2>&1 &
    timeout $(( $(left) - 10 )) $RD eval --data "$W/consistency_test" --kind synth -m "$model" \
        -o "$OUT/${name}_consistency" --variants "per-frame,{1},{1,25},{1,10,25}" --device $DEV \
        > "$OUT/${name}_consistency.log" 2>&1 &
done
wait
stamp "eval done"
for f in "$OUT"/*.log; do echo "$(basename "$f"): $(grep -c AbsRel "$f") scored"; done
cd "$OUT" && tar czf /tmp/results.tgz . && find . -mindepth 1 -delete && mv /tmp/results.tgz .
stamp "all done"
