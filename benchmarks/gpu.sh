#!/bin/bash
# Every benchmark that needs a GPU machine, in one go, within a time budget (default 540 s); logs under $OUT.
#
#   ../shared/device/wheels.sh timesformer-pytorch==0.4.1   # on this machine: the wheels a GPU machine lacks (.whl)
#   bash benchmarks/gpu.sh                                  # on the GPU machine, from the repository root
#   STEPS="end_to_end accuracy" ACCURACY="--models tsm --groups 100" BUDGET=300 bash benchmarks/gpu.sh   # some
#   (also TIMESFORMERS="timesformer,timesformer[recompute_mlp=true],timesformer_lucidrains", E2E="--steps 100",
#    MODELS_EXTRA="--compile-mode reduce-overhead": both models under CUDA graphs)
#
# Steps: model speed eager, then compiled (the TimeSformers, all compiled at once in parallel first)
# (issue 6), end-to-end training with vidseq's loading (issue 5), a profile of the TimeSformers' steps,
# extraction on that machine's CPUs, then accuracy at the training defaults (64 px, ResNet-34 bodies)
# with what time is left.
set -u
OUT=${OUT:-/tmp/vidseq-gpu}
BUDGET=${BUDGET:-540}
STEPS=${STEPS:-models_eager models_compiled end_to_end profile extract accuracy}
ACCURACY=${ACCURACY:---models cnn_lstm tsm frame_avg r2plus1d_18 timesformer}
TIMESFORMERS=${TIMESFORMERS:-timesformer,timesformer[recompute_attention=true],timesformer_lucidrains}  # models_compiled
E2E=${E2E:-}  # more end_to_end.py options
MODELS_EXTRA=${MODELS_EXTRA:-}  # more models.py options for models_compiled, e.g. --no-duel --compile-mode ...
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PYTHONPATH
fi

step() {  # step NAME MAX_SECONDS COMMAND...: run with a limit that also keeps inside the budget
  local name=$1 cap=$2 left=$((BUDGET - SECONDS - 5))
  shift 2
  [[ " $STEPS " == *" $name "* ]] || return 0
  if [ "$left" -lt 20 ]; then echo "== $name: skipped, no time left"; return; fi
  [ "$cap" -gt "$left" ] && cap=$left
  echo "== $name (limit ${cap}s, at ${SECONDS}s)"
  timeout "$cap" "$@" > "$OUT/$name.log" 2>&1
  echo "   exit $? after ${SECONDS}s"
  grep -a -v -e Warning -e warnings.warn -e Epoch "$OUT/$name.log" | tail -n 25
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision, timm, fastai, av; print('torch', torch.__version__, '| torchvision',
torchvision.__version__, '| timm', timm.__version__, '| fastai', fastai.__version__, '| av', av.__version__)"
step models_eager 150 python3 benchmarks/models.py --no-compile
# shellcheck disable=SC2086
step models_compiled 300 python3 benchmarks/models.py --models "$TIMESFORMERS" --compile-only --precompile $MODELS_EXTRA
# shellcheck disable=SC2086
step end_to_end 150 python3 benchmarks/end_to_end.py --json "$OUT/end_to_end.json" $E2E
step profile 150 bash -c "python3 benchmarks/profile_step.py timesformer && \
  python3 benchmarks/profile_step.py timesformer_lucidrains --rows 15 && \
  python3 benchmarks/profile_step.py timesformer --compile"
step extract 60 python3 benchmarks/extract.py --videos /tmp/vidseq-bench/data/videos --workers 8 --repeat 3 --stages
# shellcheck disable=SC2086
step accuracy 300 python3 benchmarks/accuracy.py $ACCURACY --preset demo --size 64
