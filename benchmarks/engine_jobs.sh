#!/usr/bin/env bash
# Wall time of 6 short FERPlus runs recorded through the engine (an embedded Dask
# cluster) with --jobs 1 and then --jobs 2, and whether the two records agree.
#
#   bash benchmarks/engine_jobs.sh FERPLUS_DIR [STEPS]    (default 100 steps per run)
#
# Supervised, FixMatch and DTA+SNL at seeds 0 and 1 of configs/ferplus_fraction_10_cpu.yaml,
# one thread each, evaluated once at the end. Each pass has its own run cache, so the
# second pass trains too; the decode cache is shared (decode once first: ssfer data check).
# Run it with the cores otherwise idle: it measures how far two workers share two cores.
set -euo pipefail
root=${1:?usage: engine_jobs.sh FERPLUS_DIR [STEPS]}
steps=${2:-100}
repo=$(cd "$(dirname "$0")/.." && pwd)
ssfer=${SSFER:-$repo/.venv/bin/ssfer}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$repo/configs/ferplus_fraction_10_cpu.yaml" "$work/ferplus.yaml"
cat > "$work/grid.yaml" <<GRID
groups:
  - name: "fp6_{algorithm}_s{seed}"
    config: ferplus.yaml
    algorithms: [supervised, fixmatch, dta_snl]
    seeds: [0, 1]
    set: {train.steps: $steps, train.eval_every: $steps, train.ckpt_every: $steps, train.threads: 1}
GRID
declare -A wall
for j in 1 2; do
  s=$(date +%s.%N)
  (cd "$work" && "$ssfer" results record --grid grid.yaml --results-dir "res$j" --cache-dir "cache$j" \
      --root "ferplus=$root" --jobs "$j" 2>"log$j.txt") || { cat "$work/log$j.txt"; exit 1; }
  wall[$j]=$(python3 -c "import time; print(round(time.time() - $s, 1))")
  echo "--jobs $j: 6 runs of $steps steps in ${wall[$j]} s wall"
done
python3 - "$work" <<'PY'
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
def rows(p):
    return [{k: v for k, v in json.loads(l).items() if k != "train_seconds"} for l in p.read_text().splitlines() if l.strip()]
same = all(rows(d / "metrics.jsonl") == rows(work / "res2" / d.name / "metrics.jsonl")
           for d in sorted((work / "res1").iterdir()) if d.is_dir() and not d.name.startswith("."))
print("records of --jobs 1 and --jobs 2:", "identical (train_seconds apart)" if same else "DIFFERENT")
PY
echo "speed-up of --jobs 2: $(python3 -c "print(round(${wall[1]} / ${wall[2]}, 2))")x"
