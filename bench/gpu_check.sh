#!/usr/bin/env bash
# `make gpu-check`: everything medcl's CUDA path owes on a lent GPU machine, in one call
# (bench/NOTES.md, "GPU check", says how to run it through the device tool).
#   1. wheels    pip-installs .whl/*.whl (from `make gpu-wheels`) into /tmp/site, --no-deps
#   2. build     MEDCL_CUDA=1, TORCH_CUDA_ARCH_LIST = the visible GPU's architecture only
#   3. tests     every `gpu`-marked test (pytest -m gpu)
#   4. sanitize  compute-sanitizer memcheck and racecheck over bench/gpu_sanitize.py
#   5. bench     each benchmark's GPU mode, sized to fit (GPU_CHECK_BENCH=0 skips)
#   6. summary   bench/gpu_summary.py: one short table last
# Every stage runs under `timeout`, cut to what is left of GPU_CHECK_BUDGET seconds (default
# 540), so the run ends in time; a stage that cannot start in time is reported as skipped.
# Logs and JSON are written to /tmp/gpu-check and come back tarred as $OUT/gpu-check.tar.gz, with
# $OUT/summary.txt and the built wheel $OUT/medcl-*.whl (the device tool returns at most 8 files).
# GPU_CHECK_STAGES=wheels,build,tests,sanitize,bench picks stages; GPU_CHECK_PYTEST_ARGS adds
# pytest arguments (say, -x); GPU_CHECK_TESTS the test paths under tests/ (default all);
# GPU_CHECK_SANITIZERS=memcheck,racecheck,synccheck picks compute-sanitizer tools; GPU_CHECK_BENCHES=contrastive,sinkhorn,decode,pretrain
# picks benchmarks (default all, in that order); GPU_CHECK_WHEEL=path installs that wheel (a previous
# run's, when only Python changed since) instead of building.
set -u
cd "$(dirname "$0")/.."
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET:-540}
STAGES=${GPU_CHECK_STAGES:-wheels,build,tests,sanitize,bench}
PY=${PYTHON:-python3}
RESULT=${OUT:-build/gpu-check-out}
mkdir -p "$RESULT"
RESULT=$(cd "$RESULT" && pwd)
OUTDIR=$(mktemp -d /tmp/gpu-check.XXXX)/gpu-check
mkdir -p "$OUTDIR"
STATUS="$OUTDIR/stages.tsv"
: > "$STATUS"
export PYTHONUNBUFFERED=1

left() { echo $(( BUDGET - ($(date +%s) - START) )); }
want() { [[ ",$STAGES," == *",$1,"* ]]; }
BENCHES=${GPU_CHECK_BENCHES:-contrastive,sinkhorn,decode,pretrain}
bench_wanted() { [[ ",$BENCHES," == *",$1,"* ]]; }

# stage NAME MAX_SECONDS LOG CMD...: runs CMD under timeout min(MAX, time left - 25 s reserve).
stage() {
  local name=$1 cap=$2 log=$3; shift 3
  local t=$(( $(left) - 25 ))
  (( cap < t )) && t=$cap
  if (( t < 10 )); then
    printf '%s\tskipped\t0\tno time left in GPU_CHECK_BUDGET=%s\n' "$name" "$BUDGET" >> "$STATUS"
    echo "== $name: skipped (no time left)"
    return 0
  fi
  echo "== $name (at most ${t} s; log $log)"
  local s=$(date +%s)
  timeout --kill-after=10 "$t" "$@" > "$OUTDIR/$log" 2>&1
  local rc=$?
  local took=$(( $(date +%s) - s ))
  local what=ok
  (( rc == 124 || rc == 137 )) && what="timeout"
  (( rc != 0 && rc != 124 && rc != 137 )) && what="exit $rc"
  printf '%s\t%s\t%s\t%s\n' "$name" "$what" "$took" "$log" >> "$STATUS"
  echo "   $what in ${took} s"
  tail -n 4 "$OUTDIR/$log" | sed 's/^/   | /'
  return $rc
}

{
  echo "start $(date -u +%FT%TZ), budget ${BUDGET} s, stages ${STAGES}"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1
  $PY -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))" 2>&1
  nvcc --version 2>&1 | tail -n 1
  compute-sanitizer --version 2>&1 | head -n 2
  echo "cores $(nproc)"
} | tee "$OUTDIR/env.txt"

if want wheels; then
  if ls .whl/*.whl > /dev/null 2>&1; then
    stage wheels 120 wheels.log $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target /tmp/site .whl/*.whl
  else
    printf 'wheels\tskipped\t0\tno .whl/ (run make gpu-wheels here, carry .whl)\n' >> "$STATUS"
  fi
fi
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}

BUILT=1
if [ -n "${GPU_CHECK_WHEEL:-}" ]; then
  stage install-wheel 120 build.log $PY -m pip install --no-deps --force-reinstall --no-cache-dir "$GPU_CHECK_WHEEL" || BUILT=0
elif want build; then
  ARCH=$($PY -c "import torch; M, m = torch.cuda.get_device_capability(0); print(f'{M}.{m}' + ('a' if (M, m) == (9, 0) else ''))")
  echo "building for TORCH_CUDA_ARCH_LIST=$ARCH"
  rm -rf /tmp/medcl-wheel
  stage build 360 build.log env MEDCL_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCH" MAX_JOBS=$(nproc) \
    $PY -m pip wheel -v --no-build-isolation --no-deps --no-cache-dir -w /tmp/medcl-wheel . || BUILT=0
  grep -E "medcl: |warning|error" "$OUTDIR/build.log" | grep -v "^ *$" | head -n 40 > "$OUTDIR/build-warnings.txt"
  if (( BUILT )); then
    cp /tmp/medcl-wheel/medcl-*.whl "$RESULT/"
    $PY -m pip install -q --no-deps --force-reinstall --no-cache-dir /tmp/medcl-wheel/medcl-*.whl >> "$OUTDIR/build.log" 2>&1 || BUILT=0
  fi
fi
# From outside the source tree: its medcl/ (no _C, no cli) would shadow the installed package.
(cd /tmp && $PY -m medcl.cli info) > "$OUTDIR/info.txt" 2>&1; head -n 30 "$OUTDIR/info.txt"

if (( BUILT )); then
  if want tests; then
    # pytest-xdist workers: a crashing test fails alone (its worker is replaced), the rest run on.
    (cd tests && stage tests 300 pytest.log $PY -m pytest -m gpu -q -p no:cacheprovider --rootdir=.. \
      -c ../pyproject.toml -o addopts="--import-mode=importlib -ra" --junitxml="$OUTDIR/pytest.xml" \
      -n 8 ${GPU_CHECK_PYTEST_ARGS:-} ${GPU_CHECK_TESTS:-.})
    if grep -qE "crashed|Segmentation fault|signal" "$OUTDIR/pytest.log"; then
      # A native crash: where it happened, for the notes (cuda-gdb also debugs host code here);
      # from /tmp, so that the installed medcl is imported, not the source tree.
      (cd /tmp && stage crash-backtrace 60 crash-backtrace.log cuda-gdb -q -batch -ex run -ex bt --args $PY -c \
        "import torch, medcl.ops; torch.ops.medcl.sinkhorn_knopp(torch.rand(4, 3, device='cuda'), 0.0, 3)")
    fi
  fi
  if want sanitize; then
    if command -v compute-sanitizer > /dev/null; then
      FILTER=()
      compute-sanitizer --help 2>&1 | grep -q -- "--kernel-name" && FILTER=(--kernel-name kns=medcl)
      # No caching allocator: every tensor its own cudaMalloc, so memcheck sees out-of-bounds
      # accesses that a pooled block would hide.
      TOOLS=${GPU_CHECK_SANITIZERS:-memcheck,racecheck,synccheck}
      [[ ",$TOOLS," == *",memcheck,"* ]] && stage memcheck 150 memcheck.log env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck \
        "${FILTER[@]}" --leak-check no --error-exitcode 3 $PY bench/gpu_sanitize.py
      [[ ",$TOOLS," == *",racecheck,"* ]] && stage racecheck 150 racecheck.log compute-sanitizer --tool racecheck "${FILTER[@]}" \
        --racecheck-report analysis --error-exitcode 3 $PY bench/gpu_sanitize.py
      [[ ",$TOOLS," == *",synccheck,"* ]] && stage synccheck 90 synccheck.log compute-sanitizer --tool synccheck "${FILTER[@]}" \
        --error-exitcode 3 $PY bench/gpu_sanitize.py
    else
      printf 'memcheck\tskipped\t0\tcompute-sanitizer not on PATH\n' >> "$STATUS"
    fi
  fi
  if want bench && [ "${GPU_CHECK_BENCH:-1}" != 0 ]; then
    bench_wanted contrastive && stage bench-contrastive 150 bench-contrastive.log $PY bench/contrastive.py \
      --device cuda --repeat 3 --impls naive,open_clip,medcl --cases 4096x512,16384x512,65536x512 --autocast \
      --out-json "$OUTDIR/contrastive.json"
    bench_wanted sinkhorn && stage bench-sinkhorn 90 bench-sinkhorn.log $PY bench/sinkhorn.py --device cuda \
      --sizes 9,16,36,100 --repeat 5 --swav-repeat 5 --out-json "$OUTDIR/sinkhorn.json"
    bench_wanted decode && stage bench-decode 150 bench-decode.log $PY bench/decode_augment.py --device cuda \
      --sizes 2048x2048 --out-sizes 224 --n 64 --repeat 2 --e2e-images 512 --out-json "$OUTDIR/decode_augment.json"
    bench_wanted pretrain && stage bench-pretrain 150 bench-pretrain.log $PY bench/pretrain_decode.py \
      --device cuda --n 256 --size 1024 --out-json "$OUTDIR/pretrain_decode.json"
  fi
fi

$PY bench/gpu_summary.py "$OUTDIR" | tee "$OUTDIR/summary.txt"
tar -C "$(dirname "$OUTDIR")" -czf "$RESULT/gpu-check.tar.gz" gpu-check
cp "$OUTDIR/summary.txt" "$RESULT/summary.txt"
echo "gpu-check: $(( $(date +%s) - START )) s; logs in $RESULT/gpu-check.tar.gz"
