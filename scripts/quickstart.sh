#!/usr/bin/env bash
# The README's "run it" command: builds memaudit, indexes text every machine of this kind has
# (the licences under /usr/share/common-licenses and the Python standard library's .py files), then
# checks two model outputs against it: one quoting the GPL-3 preamble, one novel; then scores the
# quoting one with the entropy probe (default model installed by scripts/fetch-model.sh, cached).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
bin=target/release/memaudit
work=${MEMAUDIT_QUICKSTART_DIR:-target/quickstart}
mkdir -p "$work/corpus"

# The licences are plain files without an extension: copy them in as .txt documents.
for f in /usr/share/common-licenses/*; do
  [ -f "$f" ] && cp "$f" "$work/corpus/$(basename "$f").txt"
done
stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
python3 - "$stdlib" "$work/corpus/stdlib.jsonl" <<'PY'
import json, os, sys
root, out = sys.argv[1], sys.argv[2]
with open(out, "w") as fh:
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in ("site-packages", "test", "__pycache__"))
        for f in sorted(files):
            if f.endswith(".py"):
                p = os.path.join(d, f)
                try:
                    text = open(p, encoding="utf-8").read()
                except (OSError, UnicodeDecodeError):
                    continue
                fh.write(json.dumps({"text": text, "path": os.path.relpath(p, root)}) + "\n")
PY

"$bin" index build --force --out "$work/index" "$work/corpus"
"$bin" index verify "$work/index"
echo
echo "== a model output that quotes the GPL-3 preamble"
cat > "$work/quoting.txt" <<'TXT'
Sure, here is a summary of why copyleft matters. As the licence itself puts it, the licenses for
most software and other practical works are designed to take away your freedom to share and change
the works. By contrast, the GNU General Public License is intended to guarantee your freedom to
share and change all versions of a program--to make sure it remains free software for all its users.
TXT
"$bin" check --index "$work/index" --pretty "$work/quoting.txt"
echo "== a novel model output"
echo "The migrating cranes circled the reservoir twice before settling on the frozen sandbar at dusk." \
  | "$bin" check --index "$work/index" --pretty
echo
echo "== the entropy probe on the quoting output (last lines of the per-token table)"
model=$(scripts/fetch-model.sh)
"$bin" probe --model "$model" --index "$work/index" "$work/quoting.txt" | tail -n 6
