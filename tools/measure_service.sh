#!/usr/bin/env bash
# Service throughput against offline `predict` on the same model and images (issue 13's 80% target).
# Makes a SMoPE package on the default pretrained micro ViT from 5 Fashion-MNIST classes, writes N test images as PNG,
# starts `serve`, runs `loadtest` (bounded, localhost) with --model: ROUNDS service phases of N requests, each between two
# offline `predict` phases on the same images (offline, service, offline, ...), the ratio per round and its median; then
# stops the service.
# Usage: tools/measure_service.sh [work folder] [requests per phase] [concurrency] [rounds]
# Run from the repository root after `dotnet build ContinualMoE.sln -c Release`; on a shared machine wrap it in
# `flock /work/wt/measure.lock`. SERVE_ARGS adds serve options (e.g. "--max-batch-delay-ms 0"). PREPARE_ONLY=1 makes the package and images and stops (they are reused when present).
set -euo pipefail
work=${1:-/tmp/cmoe-measure-service}
requests=${2:-1024}
concurrency=${3:-32}
rounds=${4:-5}
port=${PORT:-5731}
cli=(dotnet "${CLI_DIR:-src/ContinualMoE.Cli/bin/Release/net10.0}/continual-moe.dll")
mkdir -p "$work"
if [ ! -d "$work/model/v0001" ]; then
  "${cli[@]}" learn -m "$work/model" -d fashion-mnist:classes=0-4:train-per-class=200:test-per-class=50 \
    --method smope --set class_capacity=10 --set task_capacity=2 --set epochs=1
fi
if [ ! -d "$work/images" ]; then
  mkdir -p "$work/images"
  /usr/bin/python3 - "$work/images" <<'PY'
import gzip, sys, numpy as np
from PIL import Image
raw = gzip.open('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz').read()
images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
for i in range(256):
    Image.fromarray(images[i]).save(f'{sys.argv[1]}/{i:04d}.png')
PY
fi
[ "${PREPARE_ONLY:-0}" = 1 ] && exit 0
env ${SERVE_ENV:-} "${cli[@]}" serve -m "$work/model" --port "$port" ${SERVE_ARGS:-} > "$work/serve.log" 2>&1 &
serve=$!
trap 'kill $serve 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/health" > /dev/null && break; sleep 1; done
"${cli[@]}" loadtest --url "http://127.0.0.1:$port" --images "$work/images" --requests "$requests" --concurrency "$concurrency" --rounds "$rounds" -m "$work/model"
