#!/usr/bin/env bash
# Wheels for running `python -m benchmarks.gpu_check` on an offline GPU machine that already has
# torch, transformers, peft, scikit-learn, pandas, pyarrow and aiohttp's stack but not Ray:
#   benchmarks/offline_wheels.sh [PYTHON_VERSION] [DEST]     (defaults: 3.12 .whl)
# There: pip install --no-index --no-deps --target /tmp/site DEST/*.whl; PYTHONPATH=/tmp/site:$PWD
# Ray's wheel loses its Java jars, RLlib and the dashboard's source maps (79 -> 45 MB) so the set
# stays under a 64 MiB transfer; google-auth's chain (cryptography) is left out: nothing Ray's
# dashboard imports needs it. Measured use: docs/guide.md, "gpu_check".
set -euo pipefail
PYV=${1:-3.12}
DEST=${2:-.whl}
TMP=$(mktemp -d)
PLAT=(--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64
      --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_5_x86_64
      --platform manylinux1_x86_64)
pip_dl() { python3 -m pip download -q --only-binary=:all: --python-version "$PYV" --implementation cp "${PLAT[@]}" "$@"; }
pip_dl -d "$TMP/deps" "ray[default,train,tune,data]==2.60.0" tensorboardX==2.6.5
pip_dl --no-deps -d "$TMP/ours" captum==0.9.0 torchao==0.18.0
mkdir -p "$DEST"
# what the machine lacks, or needs at the versions Ray resolved (protobuf, aiohttp's stack)
for n in aiohttp_cors annotated_types colorful google_api_core googleapis_common_protos jsonschema \
         jsonschema_specifications opencensus opencensus_context opentelemetry_api opentelemetry_exporter_prometheus \
         opentelemetry_proto opentelemetry_sdk opentelemetry_semantic_conventions platformdirs proto_plus pydantic \
         pydantic_core referencing rpds_py smart_open tensorboardx typing_extensions typing_inspection tzdata \
         protobuf aiohttp aiohappyeyeballs aiosignal frozenlist multidict yarl propcache attrs; do
  cp "$TMP/deps/$(ls "$TMP/deps" | grep -i "^${n}-[0-9]")" "$DEST/"
done
cp "$TMP"/ours/*.whl "$DEST/"
python3 - "$TMP/deps" "$DEST" <<'EOF'
import glob, sys, zipfile
src = zipfile.ZipFile(glob.glob(f"{sys.argv[1]}/ray-*.whl")[0])
drop = lambda n: n.startswith(("ray/jars/", "ray/rllib/")) or n.endswith(".js.map")
with zipfile.ZipFile(f"{sys.argv[2]}/{src.filename.split('/')[-1]}", "w", zipfile.ZIP_DEFLATED) as dst:
    for i in src.infolist():
        if drop(i.filename):
            continue
        data = src.read(i.filename)
        if i.filename.endswith(".dist-info/RECORD"):
            data = b"\n".join(l for l in data.split(b"\n") if not drop(l.split(b",")[0].decode()))
        dst.writestr(i, data)
EOF
rm -rf "$TMP"
du -sh "$DEST"
