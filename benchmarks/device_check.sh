#!/usr/bin/env bash
# One prepared check of ssfer on a GPU machine, in at most ~8 minutes, offline.
#
#   bash benchmarks/device_check.sh [--data FERPLUS_DIR] [--out DIR] [--steps N] [--dry-run] [--keep-work]
#
# Writes everything under $OUT (default ./device_out; --out overrides):
#   device_check.log        this script's whole output
#   env.json                GPU, driver, torch, CUDA, the Python used
#   pytest_cuda.xml/.log    pytest -m cuda (tests/test_cuda.py): junit XML and log
#   bench.json / .log       ssfer bench --device cuda --json: step times, ratios, FLOPs, GFLOP/s, share of peak
#   views.json / .log       ssfer.views on the device against per-image PIL (ssfer.bench.bench_views)
#   ferplus_run.json / .log benchmarks/device_train.py: FERPlus, ResNet-18 at 112 px, bf16, channels_last,
#                           64 + 3*64 faces per step, supervised and DTA+SNL: s/step, GPU memory peak, test accuracy
#   steps.tsv, summary.json each step's exit code and seconds; the file list
# Its working files (the unpacked tar, the decode cache) go to $OUT/work, removed at the end
# unless --keep-work.
#
# FERPlus: --data DIR (the folder holding data/FER2013Train/ and fer2013new.csv), else the
# shared tar beside the tree: shared/data/ferplus.tar under the repository root, or
# ../shared/data/ferplus.tar; without either the FERPlus step fails and says so (no
# synthetic stand-in outside --dry-run).
#
# Python: the first of $PYTHON, .venv/bin/python (the repository's; it is carried with the
# tree where the copy allows: a torch venv is GBs, over the 64 MiB the device tool carries,
# so on a fresh machine expect the system python3 with torch), ../.venv/bin/python,
# python3, that imports torch and the library's dependencies. ssfer itself comes from this
# tree (PYTHONPATH), so nothing needs installing; with no such Python the script tries
# `pip install -e .` once (it fails where PyPI is unreachable, and the script says so).
#
# --dry-run: the same steps end to end on the CPU with tiny sizes and a few steps, on
# SynthFER unless --data is given (summary.json and ferplus_run.json say which); the
# CUDA tests skip there. tests/test_device_check.py runs it, so the script cannot rot.
set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRY=0
DATA=""
STEPS=1000
KEEP=0
OUT_DIR=${OUT:-./device_out}
BUDGET_S=${DEVICE_CHECK_BUDGET_S:-450}   # the whole script; each step gets at most what is left

usage() { sed -n '2,32p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --data) DATA=${2:?--data needs a folder}; shift ;;
        --out) OUT_DIR=${2:?--out needs a folder}; shift ;;
        --steps) STEPS=${2:?--steps needs a number}; shift ;;
        --keep-work) KEEP=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "device_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

mkdir -p "$OUT_DIR" || { echo "device_check.sh: --out/\$OUT $OUT_DIR: cannot create it" >&2; exit 2; }
OUT=$(cd "$OUT_DIR" && pwd)
WORK="$OUT/work"
mkdir -p "$WORK"
exec > >(tee -a "$OUT/device_check.log") 2>&1
TEE_PID=$!
START=$(date +%s)
cd "$REPO"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export SSFER_CACHE="$WORK/cache"     # the decode cache: a working file, not a result
export MPLBACKEND=Agg
export PYTHONUNBUFFERED=1
printf 'step\trc\tseconds\n' > "$OUT/steps.tsv"
echo "device_check.sh: repo $REPO, out $OUT, dry run $DRY, started $(date -u +%FT%TZ)"

left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

# run_step NAME TIMEOUT_S CMD...: run with a time limit (never past the budget), log, record; never abort
run_step() {
    local name=$1 limit=$2; shift 2
    local rest; rest=$(left)
    [ "$limit" -gt "$rest" ] && limit=$rest
    if [ "$limit" -lt 10 ]; then
        echo "== $name: skipped, budget of ${BUDGET_S}s used"
        printf '%s\t%s\t%s\n' "$name" "skipped" 0 >> "$OUT/steps.tsv"
        return 0
    fi
    echo "== $name (limit ${limit}s): $*"
    local t0 rc; t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    [ $rc -eq 124 ] && echo "== $name: timed out after ${limit}s"
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" >> "$OUT/steps.tsv"
    echo "== $name: exit $rc"
    return 0
}

DEPS="import torch, torchvision, timm, numpy, PIL, yaml, filelock, tqdm"  # what training imports
PY=""
for c in "${PYTHON:-}" "$REPO/.venv/bin/python" "$REPO/../.venv/bin/python" python3 python; do
    [ -n "$c" ] || continue
    command -v "$c" >/dev/null 2>&1 || [ -x "$c" ] || continue
    if "$c" -c "$DEPS" >/dev/null 2>&1; then PY=$c; break; fi
done
if [ -z "$PY" ]; then
    echo "device_check.sh: no Python here imports torch and the library's dependencies; trying pip install -e ."
    if python3 -m venv "$WORK/venv" && timeout 300 "$WORK/venv/bin/pip" install --quiet -e "$REPO[test]" \
        && "$WORK/venv/bin/python" -c "$DEPS"; then
        PY="$WORK/venv/bin/python"
    else
        echo "device_check.sh: pip install -e . failed (offline?): carry a .venv or set PYTHON to one with torch"
        printf '%s\t%s\t%s\n' "python" "no-python" 0 >> "$OUT/steps.tsv"
        exit 1
    fi
fi
echo "python: $PY"

if [ $DRY -eq 1 ]; then
    DEVICE=cpu
    export OMP_NUM_THREADS=1  # tiny sizes: more threads only contend with whatever else runs here
else
    DEVICE=cuda
    if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "device_check.sh: torch.cuda.is_available() is False; the checks below will fail or skip (use --dry-run on a CPU)"
    fi
fi

# ---- 0. the machine
run_step env 60 "$PY" - "$OUT/env.json" "$PY" "$DRY" <<'EOF'
import json, platform, subprocess, sys
import torch
info = {"python": sys.argv[2], "python_version": platform.python_version(), "torch": torch.__version__,
        "cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "dry_run": sys.argv[3] == "1", "cpu_count": __import__("os").cpu_count(),
        "torch_threads": torch.get_num_threads()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, gpu_count=torch.cuda.device_count(), gpu_memory_bytes=p.total_memory,
                capability=f"{p.major}.{p.minor}", cudnn=torch.backends.cudnn.version(),
                bf16_supported=torch.cuda.is_bf16_supported())
try:
    info["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                         "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
except (OSError, subprocess.SubprocessError) as e:
    info["nvidia_smi"] = f"not run: {e}"
open(sys.argv[1], "w").write(json.dumps(info, indent=1))
print(json.dumps(info, indent=1))
EOF

# ---- 1. the CUDA tests (they skip, with the reason, on a CPU)
if "$PY" -c "import pytest" >/dev/null 2>&1; then
    run_step pytest_cuda 150 bash -c 'set -o pipefail; "$0" -m pytest -m cuda tests/test_cuda.py -p no:cacheprovider -ra -q \
        --junitxml="$1/pytest_cuda.xml" 2>&1 | tee "$1/pytest_cuda.log"' "$PY" "$OUT"
else
    echo "== pytest_cuda: skipped, pytest is not installed for $PY"
    printf '%s\t%s\t%s\n' pytest_cuda no-pytest 0 >> "$OUT/steps.tsv"
fi

# ---- 2. ssfer bench: the three algorithms' steps, interleaved, with FLOPs and the distance to the peak
if [ $DRY -eq 1 ]; then
    BENCH_ARGS=(--device cpu --model test_resnet --size 16 --batch-size 4 --rounds 2 --views-seconds 0.1)
else
    BENCH_ARGS=(--device cuda --config configs/ferplus_fraction_10_dta_snl.yaml --size 112 --rounds 30)
fi
run_step bench 150 bash -c '"$0" -m ssfer.cli bench --json "${@:2}" > "$1/bench.json" 2> "$1/bench.log"; rc=$?;
    tail -n 5 "$1/bench.log"; exit $rc' "$PY" "$OUT" "${BENCH_ARGS[@]}"

# ---- 3. views on the device against per-image PIL
VIEWS_S=2
[ $DRY -eq 1 ] && VIEWS_S=0.05
run_step views 90 "$PY" - "$OUT/views.json" "$DEVICE" "$VIEWS_S" <<'EOF'
import json, sys
import torch
from ssfer.bench import bench_views
out, device, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
rows = []
for size, channels in ((48, 1), (112, 3)):
    r = bench_views(device, size=size, channels=channels, batch=256 if device == "cuda" else 32, seconds=seconds,
                    threads=1)  # threads: the PIL reference's (and the CPU views'), one core
    rows.append(r)
    print(json.dumps(r), flush=True)
open(out, "w").write(json.dumps({"reference": "torchvision.transforms.v2 on PIL images, one image at a time, "
                                              "1 thread", "rows": rows}, indent=1))
EOF

# ---- 4. FERPlus at the full profile's scale: supervised and DTA+SNL
ROOT="$DATA"
if [ -z "$ROOT" ]; then
    TAR=""
    for t in "$REPO/shared/data/ferplus.tar" "$REPO/../shared/data/ferplus.tar"; do
        [ -f "$t" ] && { TAR=$t; break; }
    done
    if [ -n "$TAR" ] && [ $DRY -eq 0 ]; then
        echo "== unpacking $TAR into $WORK/ferplus"
        mkdir -p "$WORK/ferplus" && tar -xf "$TAR" -C "$WORK/ferplus" \
            && ROOT=$(dirname "$(dirname "$(find "$WORK/ferplus" -maxdepth 3 -type d -name FER2013Train | head -n 1)")")
    fi
fi
if [ $DRY -eq 1 ]; then
    TRAIN_ARGS=(--device cpu --model test_resnet --size 16 --batch-size 4 --mu 2 --steps 3 --warmup-steps 1
                --budget-s 30)
    if [ -n "$DATA" ]; then TRAIN_ARGS+=(--root "$DATA"); else TRAIN_ARGS+=(--synthetic); fi
    echo "== dry run: $([ -n "$DATA" ] && echo "FERPlus at $DATA" || echo "SynthFER, not FERPlus"), tiny sizes, CPU"
else
    TRAIN_ARGS=(--device cuda --steps "$STEPS" --budget-s 100)
    if [ -n "$ROOT" ] && [ -d "$ROOT/data/FER2013Train" ]; then
        TRAIN_ARGS+=(--root "$ROOT")
    else
        echo "device_check.sh: no FERPlus: give --data DIR, or put ferplus.tar in shared/data/ or ../shared/data/"
        TRAIN_ARGS=()
    fi
fi
if [ ${#TRAIN_ARGS[@]} -gt 0 ]; then
    run_step ferplus_run 330 bash -c 'set -o pipefail; "$0" benchmarks/device_train.py --out "$1/ferplus_run.json" "${@:2}" \
        2>&1 | tee "$1/ferplus_run.log"' "$PY" "$OUT" "${TRAIN_ARGS[@]}"
else
    printf '%s\t%s\t%s\n' ferplus_run no-data 0 >> "$OUT/steps.tsv"
fi

# ---- summary
[ $KEEP -eq 1 ] || rm -rf "$WORK"
"$PY" - "$OUT" "$DRY" "$(( $(date +%s) - START ))" <<'EOF'
import csv, json, sys
from pathlib import Path
out, dry, seconds = Path(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3])
steps = {r["step"]: {"rc": r["rc"], "seconds": int(r["seconds"])} for r in csv.DictReader(open(out / "steps.tsv"), delimiter="\t")}
run = out / "ferplus_run.json"
summary = {"dry_run": dry, "device": "cpu" if dry else "cuda", "seconds": seconds,
           "training_data": json.loads(run.read_text())["data"] if run.exists() else "none: no FERPlus run",
           "steps": steps, "all_ok": all(s["rc"] == "0" for s in steps.values()),
           "files": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
EOF
echo "device_check.sh: done in $(( $(date +%s) - START ))s; results in $OUT"
exec 1>&- 2>&-
wait "$TEE_PID" 2>/dev/null || true  # the log is complete when the script returns
