#!/usr/bin/env bash
# One accelerator session, as run for issues 8 and 9 (see README "GPU" and the model card):
#   1. the real-size GPU bench (`rolldepth bench --what gpu`) while the training data renders (EGL, CPU cores);
#   2. training of the embedded model, continued from v1 with a time budget (`rolldepth train --unet-minutes`);
#   3. `rolldepth eval` of the result on the held-out split and the consistency split (and of v1 on the latter).
# Results go to $OUT (model pieces < 16 MiB, results.tgz). Run from the repository root on a CUDA machine with
# rolldepth importable (PYTHONPATH=src) and EGL for `rolldepth synth`.
# SMOKE=1 rehearses every step on the CPU in a minute with tiny sizes.
WORK_DEFAULT=/tmp/rolldepth-gpu
source "$(dirname "$0")/device_env.sh"

if [ "${SMOKE:-0}" = 1 ]; then
    SEQ=6 CSEQ=4 FR=12 TSEQ=2 TFR=30 RWORK=2 MIN=0.1 DEV=cpu FPB=6
    BENCH="--shape tiny --device cpu --fast-frames 30 --paper-frames 60 --res 64"
else
    SEQ=800 CSEQ=300 FR=32 TSEQ=12 TFR=64 RWORK=10 MIN=3.0 DEV=cuda FPB=96
    BENCH=""
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
$PY -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__,
        'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"

# 1. Training and test data render on the CPU cores + EGL while the GPU bench runs.
(
    stamp "render start"
    timeout 220 $RD -q synth "$W/train" --sequences $SEQ --frames $FR --size 192x144 --seed 0 --workers $RWORK &&
    timeout 120 $RD -q synth "$W/train_consistency" --sequences $CSEQ --frames $FR --size 192x144 --seed 2 \
        --consistency --workers $RWORK &&
    render_test_splits $TSEQ $TFR $RWORK 60
    echo "render exit $?"
    stamp "render done"
) > "$OUT/render.log" 2>&1 &
RENDER=$!
stamp "bench start"
[ "${SKIP_BENCH:-0}" = 1 ] || timeout 230 $RD bench --what gpu $BENCH --json "$OUT/bench_gpu.json" > "$OUT/bench.log" 2>&1
echo "bench exit $?" >> "$OUT/bench.log"
grep -v "kept in float32" "$OUT/bench.log"
stamp "bench done"
wait $RENDER
cat "$OUT/render.log"

# 2. Continue the v1 model (its codec kept) on both training sets, as many steps as fit in $MIN minutes.
stamp "train start"
timeout 300 $RD train --data "$W/train" "$W/train_consistency" --init src/rolldepth/weights/default \
    -o "$W/run" --unet-steps 1000000 --unet-minutes $MIN --lr 2e-4 --frames-per-batch $FPB --workers $RWORK \
    --save-every 1000 --save-fp16 > "$OUT/train.log" 2>&1
echo "train exit $?" >> "$OUT/train.log"
tail -3 "$OUT/train.log"
stamp "train done"

# 3. Evaluations, in parallel (small model: the GPU is idle most of the time, co-alignment runs on the CPU).
if [ -d "$W/run/model" ]; then
    export OMP_NUM_THREADS=4
    timeout 100 $RD -q eval --data "$W/test" --kind synth -m "$W/run/model" -o "$OUT/eval_test" --device $DEV &
    timeout 100 $RD -q eval --data "$W/consistency_test" --kind synth -m "$W/run/model" -o "$OUT/eval_consistency" \
        --device $DEV &
    timeout 100 $RD -q eval --data "$W/consistency_test" --kind synth -o "$OUT/eval_v1_consistency" --device $DEV &
    wait
    stamp "eval done"
    cp "$W/run/loss.jsonl" "$W/run/train_config.json" "$OUT/" 2>/dev/null
    tar -C "$W/run" -cf "$OUT/model.tar" model && split -b 15M "$OUT/model.tar" "$OUT/model.tar.part_" &&
        rm "$OUT/model.tar"
fi
cd "$OUT" && tar czf results.tgz --exclude='model.tar.part_*' --exclude=results.tgz . && \
    find . -mindepth 1 -not -name 'model.tar.part_*' -not -name results.tgz -delete
stamp "all done"
ls -la
