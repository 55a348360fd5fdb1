#!/usr/bin/env bash
# Regenerates everything derived from the CRD types (NatsCluster, Stream, Consumer,
# KeyValue, ObjectStore): the CRDs in crds/, their copies
# in the Helm chart and the kustomize base, the field reference in docs/operator.md, and
# (with --golden) the golden files of the render tests. The tests fail when any of these
# drift, and name this script.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-operator}
bin() { cargo run -q -p natrix-operator -- "$@"; }
bin crdgen --dir crds
for f in crds/*.natrix.io.yaml; do
  cp "$f" charts/natrix/crds/
  cp "$f" deploy/kustomize/crds/
done
bin crdref > /tmp/natrix-crdref.md
python3 - docs/operator.md /tmp/natrix-crdref.md <<'PY'
import sys
doc_path, ref_path = sys.argv[1], sys.argv[2]
doc, ref = open(doc_path).read(), open(ref_path).read()
begin = "<!-- BEGIN GENERATED CRD REFERENCE (natrix-operator crdref) -->"
end = "<!-- END GENERATED CRD REFERENCE -->"
b, e = doc.index(begin), doc.index(end) + len(end)
open(doc_path, "w").write(doc[:b] + ref.rstrip("\n") + doc[e:])
PY
if [ "${1:-}" = "--golden" ]; then
  UPDATE_GOLDEN=1 cargo test -q -p natrix-operator --test golden
fi
