#!/usr/bin/env bash
# Generates Go code from proto/ and builds the Go interop client, Debian packages only:
#   golang-go (1.19), golang-google-grpc-dev, golang-goprotobuf-dev (protoc-gen-go 1.3.5),
#   protobuf-compiler, libprotobuf-dev (the google/protobuf/*.proto files in /usr/include).
#
# GOPATH mode, no network: GO111MODULE=off GOPROXY=off, GOPATH=<work dir>:/usr/share/gocode.
# Each proto file is generated separately with the old `--go_out=plugins=grpc` and `M` options
# mapping every import to a GOPATH package (the protos carry no go_package; validate.proto's
# points at the BSR, and the WKTs' point at google.golang.org/protobuf, which Debian's GOPATH
# does not have, so they are mapped to github.com/golang/protobuf/ptypes/…).
#
# Usage: build.sh <work dir>   → <work dir>/bin/agw-go-client   (nothing is written to the repo)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
work="${1:?usage: build.sh <work dir>}"
mkdir -p "$work/src" "$work/bin"
work="$(cd "$work" && pwd)"

: "${PROTOC:=protoc}"
: "${GO:=/usr/bin/go}"
wkt_include="${WKT_INCLUDE:-/usr/include}"
if [[ ! -f "$wkt_include/google/protobuf/timestamp.proto" ]]; then
  echo "build.sh: $wkt_include/google/protobuf/timestamp.proto not found (apt-get install libprotobuf-dev)" >&2
  exit 3
fi

gen_root="agwinterop/gen"
mappings=(
  "Mgoogle/protobuf/timestamp.proto=github.com/golang/protobuf/ptypes/timestamp"
  "Mgoogle/protobuf/duration.proto=github.com/golang/protobuf/ptypes/duration"
  "Mgoogle/protobuf/struct.proto=github.com/golang/protobuf/ptypes/struct"
  "Mgoogle/protobuf/descriptor.proto=github.com/golang/protobuf/protoc-gen-go/descriptor"
  "Mgoogle/protobuf/field_mask.proto=google.golang.org/genproto/protobuf/field_mask"
  "Mbuf/validate/validate.proto=$gen_root/buf/validate"
)
protos=(buf/validate/validate.proto)
for f in "$repo"/proto/agentgateway/v1/*.proto; do
  rel="${f#"$repo/proto/"}"
  protos+=("$rel")
  mappings+=("M$rel=$gen_root/$(dirname "$rel")")
done
opts="plugins=grpc,$(IFS=,; echo "${mappings[*]}")"

# Output paths follow the proto path (agentgateway/v1/x.proto → $gen_dir/agentgateway/v1/x.pb.go),
# except for validate.proto, whose go_package wins; it is moved to where the M option points.
gen_dir="$work/src/$gen_root"
rm -rf "$gen_dir" "$work/scratch"
mkdir -p "$gen_dir/buf/validate" "$work/scratch"
for rel in "${protos[@]}"; do
  out="$gen_dir"
  [[ "$rel" == buf/validate/* ]] && out="$work/scratch"
  "$PROTOC" -I "$repo/proto" -I "$repo/third_party/protovalidate" -I "$wkt_include" \
    --go_out="$opts:$out" "$rel"
done
find "$work/scratch" -name validate.pb.go -exec mv {} "$gen_dir/buf/validate/" \;
rm -rf "$work/scratch"

export GO111MODULE=off GOPROXY=off GOFLAGS= GOPATH="$work:/usr/share/gocode"
export GOCACHE="${GOCACHE:-$work/cache}"
cd "$here"
"$GO" build -o "$work/bin/agw-go-client" .
echo "$work/bin/agw-go-client"
