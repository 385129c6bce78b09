#!/usr/bin/python3
"""Checks test/vectors/*.json against the Python implementation (agw_protocol.py, the code
agent.py signs with): transcripts built from the inputs, deterministic signatures, verification
results, verification codes and operator-input normalization. Release manifests are also
decoded with stubs generated from proto/ and compared with `manifest_fields`.

Prints one JSON line per file and a summary; exits 0 when everything matches, 1 on any
mismatch. If the vectors are not there yet, prints {"event": "skipped", ...} and exits 0
(or 77 with --strict-missing, the conventional "skipped" code).

Usage: check_vectors.py [--vectors DIR] [--strict-missing]
"""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import agw_audit as audit  # noqa: E402
import agw_protocol as proto  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FILES = ["register.json", "auth.json", "release-manifest.json", "verification-code.json", "audit-chain.json"]
EXIT_SKIPPED = 77


class Checker:
    def __init__(self, name: str):
        self.name = name
        self.checks = 0
        self.failures = []

    def expect(self, case_id: str, what: str, ok: bool, detail: str = "") -> None:
        self.checks += 1
        if not ok:
            self.failures.append(f"{case_id}: {what}{(' — ' + detail) if detail else ''}")


def unhex(value: str) -> bytes:
    return bytes.fromhex(value)


def check_signed_cases(c: Checker, data: dict, build, signature_field: str, key_field: str) -> None:
    if data.get("context") is not None:
        # The context string the file documents must be the one this implementation uses.
        expected_context = {"register": proto.REGISTER_CONTEXT, "auth": proto.AUTH_CONTEXT,
                            "release-manifest": proto.RELEASE_MANIFEST_CONTEXT}[c.name]
        c.expect("(file)", "context", data["context"] == expected_context, data["context"])
    for case in data["cases"]:
        cid = case["id"]
        transcript = build(case)
        c.expect(cid, "transcript", transcript.hex() == case["transcript"],
                 f"got {transcript.hex()[:48]}…, want {case['transcript'][:48]}…")
        key = unhex(case[key_field])
        signature = unhex(case[signature_field])
        if case.get("private_key_seed"):
            identity = proto.Identity.from_seed(unhex(case["private_key_seed"]))
            c.expect(cid, "public key from seed", identity.public_key == key, identity.public_key.hex())
            if case["valid"]:
                c.expect(cid, "deterministic signature", identity.sign(transcript) == signature)
        if case.get("signer_seed") and case.get("signed_message"):
            signer = proto.Identity.from_seed(unhex(case["signer_seed"]))
            c.expect(cid, "signature reproduces from signer_seed over signed_message",
                     signer.sign(unhex(case["signed_message"])) == signature)
        verified = proto.verify(key, signature, unhex(case["transcript"]))
        c.expect(cid, f"verify == {case['valid']}", verified == case["valid"])
        # Also verify over the transcript we built, in case the file's transcript is off.
        c.expect(cid, "verify (own transcript)", proto.verify(key, signature, transcript) == case["valid"])


def check_register(c: Checker, data: dict) -> None:
    check_signed_cases(
        c, data,
        lambda case: proto.register_transcript(case["enrollment_token"], unhex(case["identity_public_key"]), case["name"]),
        "proof_signature", "identity_public_key",
    )


def check_auth(c: Checker, data: dict) -> None:
    check_signed_cases(
        c, data,
        lambda case: proto.auth_transcript(case["challenge_id"], unhex(case["nonce"]), case["agent_id"],
                                           unhex(case["identity_public_key"])),
        "signature", "identity_public_key",
    )


def check_release(c: Checker, data: dict, release_pb2) -> None:
    check_signed_cases(
        c, data,
        lambda case: proto.release_manifest_transcript(unhex(case["manifest"])),
        "signature", "release_public_key",
    )
    if release_pb2 is None:
        return
    for case in data["cases"]:
        fields = case.get("manifest_fields")
        if not fields:
            continue
        manifest = release_pb2.ReleaseManifest()
        manifest.ParseFromString(unhex(case["manifest"]))
        cid = case["id"]
        c.expect(cid, "manifest.version", manifest.version == fields["version"], manifest.version)
        c.expect(cid, "manifest.artifact_url", manifest.artifact_url == fields["artifact_url"])
        c.expect(cid, "manifest.artifact_sha256", manifest.artifact_sha256.hex() == fields["artifact_sha256"])
        c.expect(cid, "manifest.artifact_size", str(manifest.artifact_size) == str(fields["artifact_size"]))
        c.expect(cid, "manifest.notes", manifest.notes == fields["notes"])
        created = fields["created_at"]
        c.expect(cid, "manifest.created_at",
                 str(manifest.created_at.seconds) == str(created["seconds"]) and manifest.created_at.nanos == created.get("nanos", 0))


def check_verification_codes(c: Checker, data: dict) -> None:
    c.expect("(file)", "context", data.get("context", proto.VERIFICATION_CODE_CONTEXT) == proto.VERIFICATION_CODE_CONTEXT)
    c.expect("(file)", "alphabet", data.get("alphabet", proto.CROCKFORD_ALPHABET) == proto.CROCKFORD_ALPHABET)
    for case in data["cases"]:
        cid = case["id"]
        key = unhex(case["public_key"])
        if case.get("private_key_seed"):
            c.expect(cid, "public key from seed", proto.Identity.from_seed(unhex(case["private_key_seed"])).public_key == key)
        code = proto.verification_code(key)
        c.expect(cid, "code", code == case["code"], f"got {code}, want {case['code']}")
    for item in data.get("normalization", []):
        got = proto.normalize_verification_code(item["input"])
        c.expect(repr(item["input"]), "normalization", got == item["normalized"], f"got {got}, want {item['normalized']}")


def check_audit_chain(c: Checker, data: dict) -> None:
    prev = audit.GENESIS_HASH.hex()
    for record in data["records"]:
        case_id = f"seq {record['seq']}"
        c.expect(case_id, "links to the previous record", record["prev_hash"] == prev)
        form = audit.canonical_form(record)
        c.expect(case_id, "canonical form", form == record["canonical"], f"got {form!r}")
        c.expect(case_id, "hash", audit.record_hash(record).hex() == record["hash"])
        prev = record["hash"]


def load_release_pb2():
    try:
        import agw_stubs

        agw_stubs.generate()
        from agentgateway.v1 import release_pb2

        return release_pb2
    except (ImportError, SystemExit) as err:
        print(json.dumps({"event": "note", "message": f"no stubs, manifest_fields not decoded: {err}"}), flush=True)
        return None


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", default=os.path.join(REPO, "test", "vectors"))
    parser.add_argument("--strict-missing", action="store_true", help="exit 77 instead of 0 when vectors are missing")
    args = parser.parse_args(argv)
    present = [f for f in FILES if os.path.isfile(os.path.join(args.vectors, f))]
    missing = [f for f in FILES if f not in present]
    if not present:
        print(json.dumps({"event": "skipped", "message": f"no test vectors in {args.vectors} yet", "missing": missing}), flush=True)
        return EXIT_SKIPPED if args.strict_missing else 0
    handlers = {
        "register.json": ("register", check_register),
        "auth.json": ("auth", check_auth),
        "verification-code.json": ("verification-code", check_verification_codes),
        "audit-chain.json": ("audit-chain", check_audit_chain),
    }
    release_pb2 = load_release_pb2() if "release-manifest.json" in present else None
    total_checks = 0
    failures = []
    for file in present:
        with open(os.path.join(args.vectors, file), encoding="utf-8") as fh:
            data = json.load(fh)
        if file == "release-manifest.json":
            checker = Checker("release-manifest")
            run = lambda c, d: check_release(c, d, release_pb2)  # noqa: E731
        else:
            name, run = handlers[file]
            checker = Checker(name)
        try:
            run(checker, data)
        except (KeyError, ValueError, TypeError) as err:
            checker.failures.append(f"malformed vector file: {type(err).__name__}: {err}")
        total_checks += checker.checks
        failures += [f"{file}: {f}" for f in checker.failures]
        print(json.dumps({"event": "file", "file": file, "cases": len(data.get("cases", data.get("records", []))), "checks": checker.checks,
                          "failures": checker.failures}), flush=True)
    print(json.dumps({"event": "summary", "checks": total_checks, "failures": len(failures), "missing": missing}), flush=True)
    for failure in failures:
        print(f"MISMATCH {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
