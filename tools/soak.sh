#!/usr/bin/env bash
# Soak run (issue 15 §6): every method (or the ones named) N times in one process (one `compare` over the repeated
# list) and N times in separate processes (`run`), then checks that every repeat gives the identical accuracy matrix
# and prints the peak resident memory of each separate run (GNU time's maximum RSS) and of the one-process run.
# Usage: tools/soak.sh OUTPUT_FOLDER [--repeats N] [--methods a,b,...] [continual-moe run options, e.g. --epochs 1]
# Without run options each run is the embedded default; a full soak over every method takes hours on 2 cores.
# CONTINUAL_MOE=path/to/continual-moe soaks that build instead of building this checkout (e.g. a copy of the build
# output, so the checkout can be rebuilt while the soak runs).
set -euo pipefail
out="$1"; shift
repeats=3; methods=""
while [ $# -gt 0 ]; do
  case "$1" in
    --repeats) repeats="$2"; shift 2 ;;
    --methods) methods="$2"; shift 2 ;;
    *) break ;;
  esac
done
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tool="${CONTINUAL_MOE:-}"
if [ -z "$tool" ]; then
  dotnet build "$root/src/ContinualMoE.Cli" -c Release -v quiet -nologo >/dev/null
  tool="$root/src/ContinualMoE.Cli/bin/Release/net10.0/continual-moe"
fi
if [ -z "$methods" ]; then
  methods="$("$tool" methods 2>/dev/null | awk -F'│' 'NF > 2 { gsub(/ /, "", $2); if ($2 ~ /^[a-z][a-z0-9-]*$/ && $2 != "method") print $2 }' | paste -sd, -)"
fi
IFS=',' read -r -a names <<< "$methods"
mkdir -p "$out"
repeated=()
for name in "${names[@]}"; do for ((r = 1; r <= repeats; r++)); do repeated+=("$name"); done; done
# One process: every repeat of every method one after another.
/usr/bin/time -f "%M" -o "$out/one-process.maxrss" \
  "$tool" compare --methods "$(IFS=,; echo "${repeated[*]}")" "$@" --output "$out/one-process" --force >"$out/one-process.log" 2>&1
# Separate processes.
for name in "${names[@]}"; do
  for ((r = 1; r <= repeats; r++)); do
    /usr/bin/time -f "%M" -o "$out/$name-process-$r.maxrss" \
      "$tool" run --method "$name" "$@" --output "$out/$name-process-$r" --force >"$out/$name-process-$r.log" 2>&1
  done
done
python3 - "$out" "$repeats" "${names[@]}" <<'PY'
import json, os, sys
out, repeats, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def matrix(folder):
    # The accuracy matrix and every derived metric (forgetting, curves, task identity); not timings.
    with open(os.path.join(folder, "metrics.json")) as f:
        metrics = json.load(f)["metrics"]
    with open(os.path.join(folder, "accuracy_matrix.csv")) as f:
        return f.read() + json.dumps(metrics, sort_keys=True)
def rss(path):
    with open(path) as f:
        return int(f.read().split()[-1]) / 1024
failed = False
print("| method | identical over %d in one process | identical over %d processes | same in both | peak RSS per process (MiB) |" % (repeats, repeats))
print("|---|---|---|---|---|")
for name in names:
    one = [matrix(os.path.join(out, "one-process", name if r == 1 else f"{name}-{r}")) for r in range(1, repeats + 1)]
    sep = [matrix(os.path.join(out, f"{name}-process-{r}")) for r in range(1, repeats + 1)]
    peaks = [rss(os.path.join(out, f"{name}-process-{r}.maxrss")) for r in range(1, repeats + 1)]
    same_one, same_sep, same_both = len(set(one)) == 1, len(set(sep)) == 1, len(set(one + sep)) == 1
    failed |= not same_both
    print(f"| {name} | {'yes' if same_one else 'NO'} | {'yes' if same_sep else 'NO'} | {'yes' if same_both else 'NO'} | {max(peaks):.0f} (min {min(peaks):.0f}) |")
print(f"\none process, every run: peak RSS {rss(os.path.join(out, 'one-process.maxrss')):.0f} MiB")
sys.exit(1 if failed else 0)
PY
