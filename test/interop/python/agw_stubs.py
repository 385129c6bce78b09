"""Generates the Python protobuf/gRPC stubs from proto/ at run time (nothing generated is
committed) and puts them on sys.path.

    /usr/bin/python3 -m grpc_tools.protoc -I proto -I third_party/protovalidate \
        --python_out=DIR --grpc_python_out=DIR <every .proto>

The google/protobuf well-known types come with grpc_tools (its own include directory).
"""

import atexit
import os
import shutil
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PROTO_ROOT = os.path.join(REPO, "proto")
VALIDATE_ROOT = os.path.join(REPO, "third_party", "protovalidate")


def _proto_files(root: str):
    for dirpath, _dirs, files in os.walk(root):
        for name in sorted(files):
            if name.endswith(".proto"):
                yield os.path.relpath(os.path.join(dirpath, name), root)


def generate(out_dir=None) -> str:
    """Runs grpc_tools.protoc into out_dir (a fresh temp dir, removed at exit, when None)."""
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError as err:  # pragma: no cover - depends on the machine
        raise SystemExit(f"grpc_tools is missing ({err}): apt-get install python3-grpc-tools") from err
    if out_dir is None:
        out_dir = tempfile.mkdtemp(prefix="agw-py-stubs-")
        atexit.register(shutil.rmtree, out_dir, True)
    os.makedirs(out_dir, exist_ok=True)
    wkt_include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    protos = list(_proto_files(PROTO_ROOT)) + ["buf/validate/validate.proto"]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{VALIDATE_ROOT}",
        f"-I{wkt_include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("grpc_tools.protoc failed to compile proto/ (see the messages above)")
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    return out_dir
