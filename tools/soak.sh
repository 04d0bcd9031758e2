#!/usr/bin/env bash
# Soak run (issue 15 §6): for every method (or the ones named), N runs in a row in one process (`compare` over the method
# named N times) and N runs in separate processes (`run`). Every repeat must give identical results: the accuracy matrix,
# the metrics and the bytes of the final checkpoint (the learner's whole state). Records each method's peak resident
# memory (GNU time's maximum RSS) for one run and for N runs in one process (growth there is a leak), and its wall time.
# Writes OUTPUT_FOLDER/soak.md, a Markdown table to paste into docs/benchmarks.md, and prints it; exits 1 when a method
# differs between repeats or fails.
# Usage: tools/soak.sh OUTPUT_FOLDER [--repeats N] [--methods a,b,...] [continual-moe run options, e.g. --epochs 1]
# Without run options each run is the embedded default; a full soak over every method takes hours on 2 cores.
# CONTINUAL_MOE=path/to/continual-moe soaks that build instead of building this checkout (e.g. a copy of the build
# output, so the checkout can be rebuilt while the soak runs).
set -uo pipefail
if [ $# -lt 1 ] || [[ "$1" == -* ]]; then
  echo "usage: tools/soak.sh OUTPUT_FOLDER [--repeats N] [--methods a,b,...] [continual-moe run options]" >&2
  exit 2
fi
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
  dotnet build "$root/src/ContinualMoE.Cli" -c Release -v quiet -nologo >/dev/null || { echo "soak: build failed" >&2; exit 2; }
  tool="$root/src/ContinualMoE.Cli/bin/Release/net10.0/continual-moe"
fi
if [ -z "$methods" ]; then
  methods="$("$tool" methods 2>/dev/null | awk -F'│' 'NF > 2 { gsub(/ /, "", $2); if ($2 ~ /^[a-z][a-z0-9-]*$/ && $2 != "method") print $2 }' | paste -sd, -)"
fi
IFS=',' read -r -a names <<< "$methods"
mkdir -p "$out"
{
  echo "commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
  echo "tools/soak.sh $out --repeats $repeats --methods $methods $*"
} > "$out/command.txt"

# Runs continual-moe ARGS with its log in NAME.log, exit code in NAME.exit, "peak-KiB wall-s" in NAME.time.
timed() {
  local name="$1"; shift
  /usr/bin/time -f "%M %e" -o "$out/$name.time" "$tool" "$@" >"$out/$name.log" 2>&1
  echo $? >"$out/$name.exit"
}
for name in "${names[@]}"; do
  repeated="$name"; for ((r = 2; r <= repeats; r++)); do repeated="$repeated,$name"; done
  echo "soak: $name, $repeats runs in one process" >&2
  timed "$name-one-process" compare --methods "$repeated" "$@" --output "$out/$name-one-process" --force
  for ((r = 1; r <= repeats; r++)); do
    echo "soak: $name, process $r of $repeats" >&2
    timed "$name-process-$r" run --method "$name" "$@" --output "$out/$name-process-$r" --force
  done
done

python3 - "$out" "$repeats" "${names[@]}" <<'PY' | tee "$out/soak.md"
import hashlib, json, os, sys
out, repeats, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

def fingerprint(folder):
    """Accuracy matrix, metrics (not timings) and the final checkpoint's bytes; None if the run did not finish."""
    try:
        with open(os.path.join(folder, "metrics.json")) as f:
            metrics = json.load(f)["metrics"]
        with open(os.path.join(folder, "accuracy_matrix.csv")) as f:
            matrix = f.read()
        with open(os.path.join(folder, "checkpoint.safetensors"), "rb") as f:
            state = hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None
    return matrix + json.dumps(metrics, sort_keys=True) + state

def timing(name):
    """(exit code, peak RSS MiB, wall s) of one timed process."""
    with open(os.path.join(out, name + ".exit")) as f:
        code = int(f.read())
    with open(os.path.join(out, name + ".time")) as f:
        peak_kib, wall = f.read().split()[-2:]
    return code, int(peak_kib) / 1024, float(wall)

def identical(prints):
    return "failed" if None in prints else ("yes" if len(set(prints)) == 1 else "NO")

failed = False
print(f"| method | identical over {repeats} runs in one process | identical over {repeats} processes | one process = separate processes | peak RSS one run (MiB) | peak RSS {repeats} runs in one process (MiB) | wall per run (s) |")
print("|---|---|---|---|---|---|---|")
for name in names:
    one = [fingerprint(os.path.join(out, f"{name}-one-process", name if r == 1 else f"{name}-{r}")) for r in range(1, repeats + 1)]
    separate = [fingerprint(os.path.join(out, f"{name}-process-{r}")) for r in range(1, repeats + 1)]
    runs = [timing(f"{name}-process-{r}") for r in range(1, repeats + 1)]
    one_code, one_peak, _ = timing(f"{name}-one-process")
    in_process, across, both = identical(one), identical(separate), identical(one + separate)
    failed |= both != "yes" or one_code != 0 or any(code != 0 for code, _, _ in runs)
    print(f"| {name} | {in_process} | {across} | {both} | {max(p for _, p, _ in runs):.0f} | {one_peak:.0f} | "
          f"{sum(w for _, _, w in runs) / len(runs):.1f} |")
print(f"\nIdentical: same accuracy matrix, metrics and final checkpoint bytes. Wall: one `run` process, start-up included (mean of {repeats}).")
with open(os.path.join(out, "command.txt")) as f:
    print(f.read().strip().replace("\n", "; "))
sys.exit(1 if failed else 0)
PY
