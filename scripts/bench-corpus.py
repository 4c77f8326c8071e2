#!/usr/bin/env python3
"""Assembles the benchmark corpus as JSONL from real text already on a machine of this kind.

Real text (default, about 350 MB): every UTF-8 source or documentation file under
  - the CPython 3.11 standard library of the pyenv install, and
  - the crate sources cargo unpacked under ~/.cargo/registry/src, and
  - the system's C headers under /usr/include (gcc is on every machine of this kind),
one document per file, {"text": ..., "path": ..., "source": "cpython" | "crates" | "include"}, in sorted path order,
stopping at --bytes of text.

Synthetic (--synthetic): a seeded generator that scales past the real corpus. Each document is a run
of lines sampled from the real corpus and recombined, so local statistics stay those of real text
while the documents themselves are new. The same seed gives the same bytes.

Usage:
  scripts/bench-corpus.py OUT.jsonl [--bytes 350MB]
  scripts/bench-corpus.py OUT.jsonl --only cpython      # the CPython library alone, without the
                                                        # third-party packages beside it (the audit example)
  scripts/bench-corpus.py OUT.jsonl --synthetic --bytes 2GB --seed 7 [--from REAL.jsonl]
"""

import argparse
import json
import os
import random
import sys

TEXT_EXT = {
    ".py", ".pyi", ".rs", ".md", ".rst", ".txt", ".toml", ".c", ".h", ".cc", ".cpp", ".hpp", ".json",
    ".html", ".css", ".js", ".cfg", ".ini", ".yml", ".yaml", ".sh", ".in", ".xml", ".tex", ".s",
}
MAX_FILE = 4 << 20


def parse_size(s):
    s = s.strip().upper()
    for unit, mult in (("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if s.endswith(unit):
            return int(float(s[: -len(unit)]) * mult)
    return int(s)


def roots():
    cpython = None
    pyenv = os.path.expanduser("~/.pyenv/versions")
    if os.path.isdir(pyenv):
        for v in sorted(os.listdir(pyenv)):
            cand = os.path.join(pyenv, v, "lib", "python3.11")
            if v.startswith("3.11") and os.path.isdir(cand):
                cpython = cand
    if cpython is None:
        import sysconfig
        cpython = sysconfig.get_paths()["stdlib"]
    crates = os.path.join(os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo")), "registry", "src")
    # C headers of the system toolchain top the corpus up to its size on a fresh machine.
    return [("cpython", cpython), ("crates", crates), ("include", "/usr/include")]


def real_documents(only=None):
    for source, root in roots():
        if only is not None and source != only:
            continue
        if not os.path.isdir(root):
            print(f"bench-corpus: {root} not found, skipped", file=sys.stderr)
            continue
        paths = []
        for d, dirs, files in os.walk(root):
            dirs.sort()
            if only == "cpython":
                # Third-party packages installed beside the standard library are not CPython's.
                dirs[:] = [x for x in dirs if x not in ("site-packages", "dist-packages")]
            for f in files:
                if os.path.splitext(f)[1].lower() in TEXT_EXT:
                    paths.append(os.path.join(d, f))
        for p in sorted(paths):
            try:
                if os.path.getsize(p) > MAX_FILE:
                    continue
                with open(p, "rb") as fh:
                    text = fh.read().decode("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if text.strip():
                yield {"text": text, "path": os.path.relpath(p, root), "source": source}


def write_real(out, limit, only=None):
    total = docs = 0
    with open(out, "w", encoding="utf-8") as fh:
        for doc in real_documents(only):
            fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
            total += len(doc["text"].encode("utf-8"))
            docs += 1
            if total >= limit:
                break
    return docs, total


def write_synthetic(out, limit, seed, source):
    lines = []
    with open(source, encoding="utf-8") as fh:
        for row in fh:
            lines.extend(l for l in json.loads(row)["text"].split("\n") if l.strip())
            if len(lines) > 2_000_000:
                break
    rng = random.Random(seed)
    total = docs = 0
    with open(out, "w", encoding="utf-8") as fh:
        while total < limit:
            n = rng.randint(20, 400)
            start = rng.randrange(len(lines))
            body = []
            for _ in range(n):
                # Mostly consecutive lines (real local structure), sometimes a jump.
                start = start + 1 if rng.random() < 0.8 else rng.randrange(len(lines))
                body.append(lines[start % len(lines)])
            text = "\n".join(body)
            fh.write(json.dumps({"text": text, "path": f"synthetic/{seed}/{docs}", "source": "synthetic"}) + "\n")
            total += len(text.encode("utf-8"))
            docs += 1
    return docs, total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--bytes", default="350MB", help="text to write (default 350MB)")
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--only", choices=["cpython", "crates", "include"], help="one source only")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--from", dest="source", help="real corpus JSONL to sample lines from (synthetic)")
    a = ap.parse_args()
    limit = parse_size(a.bytes)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    if a.synthetic:
        source = a.source
        if source is None:
            source = a.out + ".real.jsonl"
            write_real(source, 64 << 20)
        docs, total = write_synthetic(a.out, limit, a.seed, source)
    else:
        docs, total = write_real(a.out, limit, a.only)
    print(f"bench-corpus: wrote {docs} documents, {total / 1e6:.1f} MB of text to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
