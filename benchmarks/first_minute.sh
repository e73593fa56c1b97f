#!/usr/bin/env bash
# On the GPU machine: a full-size random checkpoint (kept if there), the disk's read rate, a quick check of both
# text-encoder placements on the tiny model, then benchmarks.first_minute's CASES (SEGMENTS each, 10 unless set) and,
# with DEVIATION=1, the small tiers' frames against the resident tier's. Usage: CASES=16gib,12gib benchmarks/first_minute.sh OUT
set -uo pipefail
out=${1:?usage: benchmarks/first_minute.sh OUT}
ckpt=${CKPT:-/tmp/helios-ckpt}
mkdir -p "$out/logs"
head -3 /proc/meminfo > "$out/machine.txt"; nvidia-smi --query-gpu=name,memory.total --format=csv >> "$out/machine.txt"
if [ ! -f "$ckpt/model_index.json" ]; then
  python3 -m benchmarks.random_checkpoint "$ckpt" 2>&1 | tail -2 | tee -a "$out/machine.txt" || exit 1
  shard=$(ls -S "$ckpt"/transformer/*.safetensors | head -1)
  dd if="$shard" of=/dev/null bs=64M iflag=direct 2>&1 | tail -1 | sed 's/^/disk read (O_DIRECT): /' | tee -a "$out/machine.txt"
  for memory in $([ "${CHECKS:-1}" = 1 ] && echo resident fp8-streamed); do
    timeout 180 python3 -m helios generate --model tiny --prompt check --frames 33 --steps 1,1,1 --height 64 --width 128 \
      --memory "$memory" --out "/tmp/check-$memory.npy" > "$out/logs/check-$memory.log" 2>&1 || { cat "$out/logs/check-$memory.log"; exit 1; }
  done
fi
if [ -n "${CASES:-}" ]; then
  python3 -m benchmarks.first_minute --model "$ckpt" --cases "$CASES" --segments "${SEGMENTS:-10}" --work /tmp/first-minute \
    --drop-caches --video-format "${FORMAT:-mp4}" --logs "$out/logs" --out "$out/first_minute.jsonl"
fi
if [ "${DEVIATION:-0}" = 1 ]; then  # the small tiers' 2-segment frames against the resident tier's, one process each
  bench="timeout 240 python3 -m benchmarks.bench --model $ckpt --segments 2 --steps 2,2,2 --no-reference"
  for gib in 80 16 12 8; do
    if [ $gib = 80 ]; then args="--memory resident --frames-out /tmp/resident.npy"; else args="--memory auto --host-memory 24 --frames-vs /tmp/resident.npy"; fi
    $bench --cap-gib $gib $args --out /tmp/deviation.json >> "$out/logs/deviation.log" 2>&1 &&
      python3 -c "import json; print(json.dumps(json.load(open('/tmp/deviation.json'))))" >> "$out/deviation.jsonl"
  done
fi
