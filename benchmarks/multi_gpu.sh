#!/usr/bin/env bash
# One stream on N GPUs of one host: for N = 1 and each of GPUS (default "2 4"), our engine and diffusers' pipeline
# with the same context parallelism, and the frames of N GPUs against one GPU's. Usage: benchmarks/multi_gpu.sh OUT
set -euo pipefail
out=${1:?usage: benchmarks/multi_gpu.sh OUT}
mkdir -p "$out"
frames=$(mktemp -d)/one-gpu.npy
python -m benchmarks.bench --segments "${SEGMENTS:-10}" --frames-out "$frames" --out "$out/n1.json" ${BENCH_ARGS:-} 2>&1 | tee "$out/n1.log"
for n in ${GPUS:-2 4}; do
  torchrun --standalone --nproc-per-node "$n" -m benchmarks.bench --segments "${SEGMENTS:-10}" --frames-vs "$frames" \
    --out "$out/n$n.json" ${BENCH_ARGS:-} 2>&1 | tee "$out/n$n.log"
done
