#!/usr/bin/env bash
# The embedded model v2 (issue 8), trained from scratch in one accelerator run of under 10 minutes:
#   1. render the training data on the machine (EGL; 14 processes);
#   2. two codecs side by side for the same time, plain L1 and disparity-relative L1 (`--codec-loss`), while the
#      test splits render; keep the one whose round trip of true depth scores better (benchmarks/codec_ceiling.py);
#   3. the UNet from scratch on that codec, for the time left (`--unet-minutes`);
#   4. a quick `rolldepth eval` of the result on the machine's renders of the two test splits (a continuation skips
#      it unless MACHINE_EVAL=1: the CPU scores the 12-video splits afterwards anyway, and its 65 s go to training).
# Results go to $OUT (model pieces < 16 MiB, results.tgz). Run from the repository root on a CUDA machine with
# rolldepth's dependencies importable and EGL for `rolldepth synth`. Everything ends by DEADLINE seconds (555).
# SMOKE=1 rehearses every step on the CPU in a few minutes with tiny sizes.
# INIT=MODEL continues the UNet of MODEL (its codec kept) on freshly rendered data instead of steps 2-3 from scratch:
#   SEEDS="10 12" picks new training scenes, CROP=192x144 trains on whole frames, FPB=auto measures the step rate
#   of a few batch sizes while the data renders (benchmarks/unet_step_rate.py) and takes the best; it then
#   profiles a few steps of it (step_profile.txt in results.tgz: where a step's time goes on the device).
# SYNTH="--realism --motion-blur 3" adds `rolldepth synth` options to the training renders (never to the test splits).
# Training on whole frames (CROP=192x144) keeps each RGB frame's latent once encoded (`rolldepth train --cache-latents`).
# FR=64 MAXDIL=25 renders 64-frame training shots and draws snippet dilations up to 25, the largest inference uses
#   (`--max-dilation`; the default 8 needs only FR=32); halve SEQ and CSEQ to keep the number of frames.
# CFR sets the consistency shots' frames apart from FR (default: FR): FR=16 CFR=64 MAXDIL=25 renders four times the
#   ordinary scenes for the same frames, and only the consistency shots are long enough for the largest dilations.
# A continuation also chooses where on the line from INIT to the run to stop (benchmarks/interpolate_weights.py),
#   in the same call: the UNets at ALPHAS ("0.3 0.5 0.7 1") of the way, and INIT, are scored per frame on VSEQ (24)
#   new shots of each training recipe (seeds 40 and 42, in no run and no test split) and benchmarks/choose_alpha.py
#   applies v2.3's rule; step 4 (if run) then scores the chosen model, and alpha.md says which it is (rebuild it from
#   INIT and the run's model with interpolate_weights.py). ALPHAS="" skips it. The 10 evaluations run at once and
#   score AbsRel and δ1 only (`--no-tae`): with TAE they took 158 s on the H200 (stop 28), and on the 2-core CPU TAE
#   is over half of the scoring time (12 videos per frame at --res 32: 69 s with it, 31 s without), so VAL_S is 80.
WORK_DEFAULT=/tmp/rolldepth-v2
source "$(dirname "$0")/device_env.sh"
STAMPS=$OUT/stamps.log  # the stages' timed lines come back in results.tgz too, not only in the call's output
# A rehearsal after an earlier one would find its run there and stop at training, minutes in: refuse at once.
[ ! -e "$W/run" ] || { echo "$W holds an earlier run: remove it or set WORK to a new folder"; exit 1; }
left() { echo $(( ${DEADLINE:-555} - (SECONDS - T0) )); }

CODECS=${CODECS:-l1 relative}
INIT=${INIT:-} SEEDS=(${SEEDS:-0 2}) CROP=${CROP:-128x96} LR=${LR:-3e-4}
if [ "${SMOKE:-0}" = 1 ]; then
    SEQ=8 CSEQ=4 FR=12 TSEQ=2 TFR=20 RW=2 CW=1 UW=2 DEV=cpu CODEC_MIN=0.3 VB=4 EVAL_S=150 DEADLINE=${DEADLINE:-900}
    FPB=${FPB:-6} BATCHES="6 12" CROP=${CROP/192x144/64x48} VSEQ=2 VAL_S=300 MARGIN=120 END_S=30
else
    SEQ=${SEQ:-1000} CSEQ=${CSEQ:-400} FR=${FR:-32} TSEQ=8 TFR=64 RW=14 CW=6 UW=12 DEV=cuda CODEC_MIN=1.6 VB=32 EVAL_S=65
    FPB=${FPB:-192} BATCHES="192 384 576" VSEQ=${VSEQ:-24} VAL_S=80 MARGIN=45 END_S=15
fi
CFR=${CFR:-$FR}
ALPHAS=$([ -n "$INIT" ] && $PY -c "import sys; print(' '.join(f'{float(a):g}' for a in sys.argv[1:]))" \
    ${ALPHAS-0.3 0.5 0.7 1})  # written as choose_alpha.py prints them (0.70 -> 0.7)
[ -n "$ALPHAS" ] || VAL_S=0
# Step 4 on the machine: always from scratch (its test renders also choose the codec), for a continuation on request.
MACHINE_EVAL=${MACHINE_EVAL:-$([ -n "$INIT" ] && echo 0 || echo 1)}
[ "$MACHINE_EVAL" = 1 ] || EVAL_S=$END_S  # without it, only the packing of the results follows the validation

CACHE=$([ "$CROP" = 192x144 ] && echo --cache-latents)

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# 1. Training data (and, when continuing, the test splits and the batch size's step rates at the same time).
render_tests() {
    if [ "$MACHINE_EVAL" = 1 ] || [ -z "$INIT" ]; then
        render_test_splits $TSEQ $TFR 3 100 > "$OUT/render_test.log" 2>&1 || return
    fi
    [ -z "$ALPHAS" ] || render_recipes "$W/val_ordinary" 40 "$W/val_consistency" 42 $VSEQ $TFR 3 100 \
        >> "$OUT/render_test.log" 2>&1
}
stamp "render start"
if [ -n "$INIT" ]; then
    render_tests &
    [ "$FPB" = auto ] && timeout 120 $PY benchmarks/unet_step_rate.py --model "$INIT" --crop $CROP \
        --batches $BATCHES $CACHE --profile "$OUT/step_profile.txt" > "$OUT/step_rate.log" 2>&1 &
fi
# Time-outs grow with the shots' frames: the H100 rendered 500 x 64 frames in 94 s (2.9 ms a frame), so 5 ms a
# frame leaves room; fixed 150 s would have cut SEQ=800 FR=64 (about 150 s) short. A stage never gets under 150/80 s.
render_limit() { local s=$(( 40 + $1 * $2 / 200 )); echo $(( s > $3 ? s : $3 )); }  # SEQUENCES FRAMES FLOOR
timeout $(render_limit $SEQ $FR 150) $RD -q synth "$W/train" --sequences $SEQ --frames $FR --size 192x144 \
    --seed ${SEEDS[0]} --workers $RW ${SYNTH:-} &&
timeout $(render_limit $CSEQ $CFR 80) $RD -q synth "$W/train_consistency" --sequences $CSEQ --frames $CFR --size 192x144 \
    --seed ${SEEDS[1]} --consistency --workers $RW ${SYNTH:-} || { echo "render failed"; exit 1; }
wait
stamp "render done"

if [ -n "$INIT" ]; then
    UNET_FROM=$INIT
    if [ "$FPB" = auto ]; then
        cat "$OUT/step_rate.log"
        FPB=$(grep -E '^[0-9]+$' "$OUT/step_rate.log" | tail -1)  # the probe's choice; the profiler logs after it
        [[ "$FPB" =~ ^[0-9]+$ ]] || FPB=${BATCHES%% *}
    fi
else
    # 2. Two codecs for the same time; the test splits render meanwhile. Keep the better round trip of true depth.
    for loss in $CODECS; do
        timeout $(left) $RD train --data "$W/train" "$W/train_consistency" -o "$W/codec_$loss" --codec-loss $loss \
            --vae-steps 1000000 --vae-minutes $CODEC_MIN --vae-batch $VB --unet-steps 0 --workers $CW \
            --save-every 100000 > "$OUT/codec_$loss.log" 2>&1 &
    done
    render_tests
    wait
    stamp "codecs done"
    BEST="" BEST_REL=1e9
    for loss in $CODECS; do
        tail -2 "$OUT/codec_$loss.log"
        [ -d "$W/codec_$loss/model" ] && timeout 60 $PY benchmarks/codec_ceiling.py --data "$W/test" \
            --model "$W/codec_$loss/model" --device $DEV --json "$OUT/ceiling_$loss.json" > "$OUT/ceiling_$loss.log" 2>&1 &
    done
    wait
    for loss in $CODECS; do
        [ -f "$OUT/ceiling_$loss.json" ] || continue
        echo "$loss: $(cat "$OUT/ceiling_$loss.log")"
        rel=$($PY -c "import json; print(json.load(open('$OUT/ceiling_$loss.json'))['inverse_depth_abs_rel'])")
        if $PY -c "import sys; sys.exit(not $rel < $BEST_REL)"; then BEST=$loss BEST_REL=$rel; fi
        cp "$W/codec_$loss/loss.jsonl" "$OUT/codec_${loss}_loss.jsonl"
    done
    [ -n "$BEST" ] || { echo "no codec"; exit 1; }
    stamp "codec chosen: $BEST (AbsRel $BEST_REL)"
    UNET_FROM=$W/codec_$BEST/model
fi

# 3. The UNet (from scratch on the chosen codec, or continued from INIT) for the time left before the evaluation.
# MARGIN: what a training run takes beyond its --unet-minutes (start-up, writing the model); 45 s sufficed on the
# GPU machines, the 2-core CPU took over 50 s.
MIN=$($PY -c "print(max(0.2, ($(left) - $EVAL_S - $VAL_S - $MARGIN) / 60))")
stamp "unet start from $UNET_FROM, $MIN minutes, $FPB frames of $CROP per batch, lr $LR"
timeout $(( $(left) - EVAL_S - VAL_S + 5 )) $RD train --data "$W/train" "$W/train_consistency" --init "$UNET_FROM" \
    -o "$W/run" --vae-steps 0 --unet-steps 1000000 --unet-minutes $MIN --lr $LR --frames-per-batch $FPB \
    --crop $CROP --one-step-fraction 0.7 --max-dilation ${MAXDIL:-8} --workers $UW --save-every 100000 --save-fp16 \
    $CACHE > "$OUT/train.log" 2>&1
echo "train exit $?" >> "$OUT/train.log"
tail -3 "$OUT/train.log"
stamp "unet done"

# 4. The model back in pieces; for a continuation, the point of the line from INIT to the run that the validation
#    shots choose; then (MACHINE_EVAL=1) a quick evaluation of it on the machine's renders of the test splits (the
#    real one runs on the CPU renders afterwards).
if [ -d "$W/run/model" ]; then
    tar -C "$W/run" -cf "$OUT/model.tar" model && split -b 15M "$OUT/model.tar" "$OUT/model.tar.part_" &&
        rm "$OUT/model.tar"
    cp "$W/run/loss.jsonl" "$OUT/unet_loss.jsonl"
    model_at() { case $1 in 0) echo "$INIT" ;; 1) echo "$W/run/model" ;; *) echo "$W/a$1" ;; esac; }
    EVAL_MODEL=$W/run/model
    if [ -n "$ALPHAS" ]; then
        stamp "validation of alphas 0 $ALPHAS"
        export OMP_NUM_THREADS=2
        rm -rf "$W/val" && mkdir -p "$W/val"
        for a in 0 $ALPHAS; do
            m=$(model_at $a)
            if [ ! -d "$m" ]; then
                $PY benchmarks/interpolate_weights.py --start "$INIT" --end "$W/run/model" --alpha $a -o "$m" || continue
            fi
            for recipe in ordinary consistency; do
                timeout $(( $(left) - EVAL_S )) $RD eval --variants per-frame --data "$W/val_$recipe" --kind synth \
                    -m "$m" -o "$W/val/a${a}_$recipe" --device $DEV --no-tae > "$W/val/a${a}_$recipe.log" 2>&1 &
            done
        done
        wait
        if $PY benchmarks/choose_alpha.py "$W/val" > "$OUT/alpha.md"; then
            EVAL_MODEL=$(model_at "$(tail -1 "$OUT/alpha.md")")
        else
            echo "no choice (the start's validation did not finish): the run itself is scored" >> "$OUT/alpha.md"
        fi
        cat "$OUT/alpha.md"
        cp -r "$W/val" "$OUT/val"
        stamp "chose $EVAL_MODEL"
    fi
fi
if [ -d "$W/run/model" ] && [ "$MACHINE_EVAL" = 1 ]; then
    export OMP_NUM_THREADS=8
    timeout $(( $(left) - 8 )) $RD eval --variants "per-frame,{1,10,25}" --data "$W/test" --kind synth -m "$EVAL_MODEL" -o "$OUT/eval_test" \
        --device $DEV > "$OUT/eval_test.log" 2>&1 &
    timeout $(( $(left) - 8 )) $RD eval --variants "per-frame,{1,10,25}" --data "$W/consistency_test" --kind synth -m "$EVAL_MODEL" \
        -o "$OUT/eval_consistency" --device $DEV > "$OUT/eval_consistency.log" 2>&1 &
    wait
    stamp "eval done"
elif [ ! -d "$W/run/model" ] && [ -z "$INIT" ]; then
    tar -C "$W/codec_$BEST" -cf "$OUT/codec_model.tar" model
fi
cd "$OUT" && tar czf /tmp/results.tgz --exclude='model.tar.part_*' . ; \
    find . -mindepth 1 -not -name 'model.tar.part_*' -delete; mv /tmp/results.tgz .
stamp "all done"
ls -la
