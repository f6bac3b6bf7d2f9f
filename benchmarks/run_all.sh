#!/usr/bin/env bash
# Re-run every benchmark with the arguments quoted in docs/benchmarks.md; outputs -> $OUT.
# Run on an otherwise idle machine: timings are medians of repeats, but another process
# on the 2 cores still skews them.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
run() { local name=$1; shift; echo "== $name: python $*"; { echo "\$ python $*"; python "$@"; } > "$OUT/$name.md" 2>&1; tail -n 25 "$OUT/$name.md"; }
run metrics   benchmarks/bench_metrics.py --repeats 5
run ot        benchmarks/bench_ot.py --repeats 3 --iters 100
run tap       benchmarks/bench_tap.py --repeats 3 --skip-naive
run tap-naive benchmarks/bench_tap.py --repeats 1 --captions 1045
run gpa       benchmarks/bench_gpa.py --repeats 3
run features  benchmarks/bench_features.py --clips 64 --repeats 5
run encoders  benchmarks/bench_encoders.py --clips 32 --repeats 3
run batch-exact benchmarks/bench_batch_exact.py --clips 32 --batch-size 8 --repeats 4
run hf-frontends benchmarks/bench_hf_frontends.py --clips 16 --repeats 5
run train     benchmarks/bench_train.py --repeats 20
run losses    benchmarks/bench_losses.py --batch 64 128 --repeats 7
run precision benchmarks/bench_precision.py --batch 128 --steps 6 --repeats 3 --epochs 6
run distributed benchmarks/bench_distributed.py --batch 128 --steps 8 --repeats 3
run index     benchmarks/bench_index.py --sizes 100000 1000000 --clips 300 --repeats 3
run load      benchmarks/bench_load.py --clients 50 --requests 3000
run data      benchmarks/bench_data.py --clips 600 --repeats 3
run finetune  benchmarks/bench_finetune.py --encoders aisfx cnn14 passt --batch 2 --seconds 1 --repeats 1
