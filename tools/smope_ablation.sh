#!/usr/bin/env bash
# Reruns SMoPE's ablation on any scenario: each row adds one component to the one above it.
# Usage: tools/smope_ablation.sh OUTPUT_FOLDER [continual-moe run options, e.g. --dataset fashion-mnist --epochs 3]
# Prints a Markdown table of final / cumulative average accuracy and forgetting, read from each run's metrics.json.
set -euo pipefail
out="$1"; shift
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dotnet build "$root/src/ContinualMoE.Cli" -c Release -v quiet -nologo >/dev/null
tool="$root/src/ContinualMoE.Cli/bin/Release/net10.0/continual-moe"
off="method.sparse=false method.adaptive_noise=false method.router_loss=false method.prototype_loss=false method.classifier_alignment=false method.dense_warmup=false"
declare -a names=(
  "dense prompt experts (aggregated scores, all experts)"
  "+ sparse top-K selection"
  "+ adaptive noise"
  "+ router loss"
  "+ prototype loss"
  "+ dense warm-up on the first task"
  "+ classifier alignment (full SMoPE)"
  "full SMoPE with per-token prefix logits"
)
declare -a sets=(
  "$off"
  "$off method.sparse=true"
  "$off method.sparse=true method.adaptive_noise=true"
  "$off method.sparse=true method.adaptive_noise=true method.router_loss=true"
  "$off method.sparse=true method.adaptive_noise=true method.router_loss=true method.prototype_loss=true"
  "$off method.sparse=true method.adaptive_noise=true method.router_loss=true method.prototype_loss=true method.dense_warmup=true"
  ""
  "method.aggregated_logits=false"
)
mkdir -p "$out"
for i in "${!names[@]}"; do
  # shellcheck disable=SC2086
  "$tool" run --method smope "$@" --set ${sets[$i]:-seed=1993} --output "$out/step$i" --force >"$out/step$i.log" 2>&1
done
python3 - "$out" "${names[@]}" <<'PY'
import json, sys, os
out, names = sys.argv[1], sys.argv[2:]
print("| variant | final avg acc (%) | cumulative avg acc (%) | forgetting (pp) |")
print("|---|---|---|---|")
for i, name in enumerate(names):
    m = json.load(open(os.path.join(out, f"step{i}", "metrics.json")))["metrics"]
    print(f"| {name} | {m['final_average_accuracy']:.2f} | {m['cumulative_average_accuracy']:.2f} | {m['forgetting']:.2f} |")
PY
