"""The byte-level parts of the AgentGateway agent protocol, written from docs/protocol.md alone.

Shared by agent.py (a real client) and check_vectors.py (checks test/vectors/*.json), so the
vectors test exactly the code the Python agent signs with. Standard library + `cryptography`.

    transcript = u32be(len(context)) || context || for each field: u32be(len(field)) || field
"""

import hashlib
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

REGISTER_CONTEXT = "agentgateway/v1/register"
AUTH_CONTEXT = "agentgateway/v1/auth"
RELEASE_MANIFEST_CONTEXT = "agentgateway/v1/release-manifest"
VERIFICATION_CODE_CONTEXT = "agentgateway/v1/verification-code"
CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def encode_transcript(context: str, fields) -> bytes:
    """u32be-length-prefixed context (ASCII) followed by each u32be-length-prefixed field."""
    out = bytearray()
    for part in [context.encode("ascii"), *fields]:
        if not isinstance(part, (bytes, bytearray)):
            raise TypeError("transcript fields must be bytes")
        out += struct.pack(">I", len(part))
        out += part
    return bytes(out)


def _require_len(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")


def register_transcript(token: str, public_key: bytes, name: str) -> bytes:
    """Register proof of possession: the token, the raw 32-byte key and the name, as sent."""
    _require_len("identity_public_key", public_key, 32)
    return encode_transcript(REGISTER_CONTEXT, [token.encode("utf-8"), public_key, name.encode("utf-8")])


def auth_transcript(challenge_id: str, nonce: bytes, agent_id: str, public_key: bytes) -> bytes:
    """CompleteAuthHandshake: the challenge id and agent id exactly as received (the gateway
    sends lowercase UUIDs), the 32-byte nonce and the 32-byte key."""
    _require_len("nonce", nonce, 32)
    _require_len("identity_public_key", public_key, 32)
    return encode_transcript(
        AUTH_CONTEXT,
        [challenge_id.encode("utf-8"), nonce, agent_id.encode("utf-8"), public_key],
    )


def release_manifest_transcript(manifest: bytes) -> bytes:
    """Release manifest: the serialized ReleaseManifest bytes exactly as received."""
    return encode_transcript(RELEASE_MANIFEST_CONTEXT, [manifest])


def verification_code(public_key: bytes) -> str:
    """SHA-256(context || key), first 40 bits, 8 Crockford base32 characters, "XXXX-XXXX"."""
    _require_len("public_key", public_key, 32)
    digest = hashlib.sha256(VERIFICATION_CODE_CONTEXT.encode("ascii") + public_key).digest()
    bits = int.from_bytes(digest[:5], "big")
    code = "".join(CROCKFORD_ALPHABET[(bits >> shift) & 31] for shift in range(35, -1, -5))
    return f"{code[:4]}-{code[4:]}"


def normalize_verification_code(value: str) -> str:
    """Operator input → comparable form: uppercase, no '-' or whitespace, I/L → 1, O → 0."""
    out = []
    for ch in value.upper():
        if ch == "-" or ch.isspace():
            continue
        out.append({"I": "1", "L": "1", "O": "0"}.get(ch, ch))
    return "".join(out)


class Identity:
    """An ed25519 identity: the 32-byte RFC 8032 seed and its raw 32-byte public key."""

    def __init__(self, private_key: Ed25519PrivateKey):
        self._key = private_key
        self.public_key = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls) -> "Identity":
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> "Identity":
        _require_len("seed", seed, 32)
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def seed(self) -> bytes:
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Pure Ed25519 (RFC 8032) verification with a raw 32-byte key and a 64-byte signature."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except InvalidSignature:
        return False
