#!/usr/bin/env bash
# Checks the CUDA build on a GPU machine, from the repository root there:
#   1. tests/model_cuda.rs: bf16 CUDA scores against the f32 CPU ones and llama.cpp's fixture;
#   2. the probe benchmark on the CPU and on CUDA in one run (tokens/s, CUDA against CPU);
#   3. the daemon (file source) on the demo corpus with the probe on-match and always, on the
#      CPU and on CUDA: messages/s (wall time, start-up and model load included), and whether both
#      devices give the same verdicts.
#
#   scripts/gpu-check.sh BIN_DIR MODEL LOG_DIR
#
# BIN_DIR holds memaudit, model_cuda and probe as scripts/build-cuda.sh leaves them; MODEL is
# SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh on a machine with PyPI). Logs and
# records go to LOG_DIR; the summary is printed. DEVICES (default "cpu cuda") names the devices the
# daemon runs on, MESSAGES (default 1000) how many messages it gets.
set -euo pipefail
devices=${DEVICES:-cpu cuda} messages=${MESSAGES:-1000}
bin=$(realpath "$1") model=$(realpath "$2") logs=$(realpath -m "$3")
mkdir -p "$logs"
MEMAUDIT_MODEL_DIR=$(dirname "$model")
export MEMAUDIT_MODEL=$model MEMAUDIT_MODEL_DIR
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
echo "cores: $(nproc)"

echo "== tests/model_cuda.rs"
"$bin/model_cuda" --test-threads=1 --nocapture 2>&1 | tee "$logs/model_cuda.log" |
  grep -E "^test |Δ|test result|panicked" || echo "tests/model_cuda.rs: FAILED (log: $logs/model_cuda.log)"

echo "== cargo bench --features cuda --bench probe -- --device cpu --device cuda"
"$bin/probe" --bench --device cpu --device cuda 2>&1 | tee "$logs/probe-bench.log" ||
  echo "probe bench: FAILED"

echo "== the daemon, file source, demo corpus"
work=$(mktemp -d)
"$bin/memaudit" demo --no-probe --workdir "$work/demo" --data data/demo >"$logs/demo.log" 2>&1 ||
  { tail -20 "$logs/demo.log"; exit 1; }
# Messages of ~1 KiB: one in four quotes 300 characters of a corpus document.
python3 - "$work/demo/corpus" "$work/in.jsonl" "$messages" <<'PY'
import json, pathlib, random, sys
rng = random.Random(7)
docs = [p.read_text(errors="replace") for p in sorted(pathlib.Path(sys.argv[1]).glob("*.txt"))]
docs = [" ".join(d.split()) for d in docs if len(d) > 2000]
words = " ".join(docs).split()
with open(sys.argv[2], "w") as out:
    for i in range(int(sys.argv[3])):
        text = " ".join(rng.choice(words) for _ in range(170))[:1024]
        if i % 4 == 0:
            d = rng.choice(docs)
            s = rng.randrange(0, len(d) - 300)
            text = text[:362] + " " + d[s : s + 300] + " " + text[362:]
            text = text[:1024]
        out.write(json.dumps({"id": f"m{i:05}", "text": text}) + "\n")
PY
run() { # DEVICE POLICY
  local out="$work/$1-$2"
  mkdir -p "$out"
  local t0 t1
  t0=$(date +%s.%N)
  local input="$work/in.jsonl"
  [ "$2" = always ] && input="$work/in-always.jsonl"
  "$bin/memaudit" serve --input "$input" --index "$work/demo/index" --http "" \
    --set model.path="$model" --set model.device="$1" --set probe.policy="$2" --set probe.batch_size=32 \
    --set file.verdicts="$out/verdicts.jsonl" --set file.alerts="$out/alerts.jsonl" \
    --set file.dead_letters="$out/dlq.jsonl" >"$logs/serve-$1-$2.log" 2>&1 ||
    { echo "$1 $2: FAILED"; tail -20 "$logs/serve-$1-$2.log"; return 0; }
  t1=$(date +%s.%N)
  python3 - "$out/verdicts.jsonl" "$t0" "$t1" "$1" "$2" <<'PY'
import collections, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
sev = collections.Counter(r["severity"] for r in rows)
probed = sum(1 for r in rows if r.get("entropy"))
secs = float(sys.argv[3]) - float(sys.argv[2])
print(f"{sys.argv[4]:<5} {sys.argv[5]:<9} {len(rows)} verdicts, {probed} probed, {secs:.1f} s, "
      f"{len(rows) / secs:.0f} messages/s; " + ", ".join(f"{k} {v}" for k, v in sorted(sev.items())))
PY
}
# The probe on every message is slow on the CPU (~3 messages/s on 16 cores): `always` gets the
# first quarter of the messages.
head -n $((messages / 4)) "$work/in.jsonl" >"$work/in-always.jsonl"
for policy in on-match always; do
  for d in $devices; do run "$d" "$policy"; done
done
[ "$devices" = "cpu cuda" ] || exit 0
# Same verdicts on both devices? Severity per id, and the mean entropy of the probed ones.
python3 - "$work" <<'PY'
import json, sys
import os
for policy in ("on-match", "always"):
    if not all(os.path.exists(f"{sys.argv[1]}/{d}-{policy}/verdicts.jsonl") for d in ("cpu", "cuda")):
        continue
    load = lambda d: {r["id"]: r for r in map(json.loads, open(f"{sys.argv[1]}/{d}-{policy}/verdicts.jsonl"))}
    cpu, gpu = load("cpu"), load("cuda")
    differ = [i for i in cpu if cpu[i]["severity"] != gpu[i]["severity"]]
    dh = [abs(cpu[i]["entropy"]["mean_entropy"] - gpu[i]["entropy"]["mean_entropy"])
          for i in cpu if cpu[i].get("entropy") and gpu[i].get("entropy")]
    print(f"{policy}: {len(differ)} of {len(cpu)} severities differ between cpu and cuda; "
          f"mean |Δ mean entropy| {sum(dh) / max(len(dh), 1):.4f} nats over {len(dh)} probed, max {max(dh, default=0):.4f}")
PY
