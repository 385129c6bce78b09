"""The audit chain's canonical form (docs/protocol.md, "Audit chain"), written from the spec
alone in plain Python, to show that a SIEM-side verifier needs nothing from the gateway.

RFC 8785 (JCS): members sorted by the UTF-16 code units of their names, no whitespace, strings
escaped as ECMAScript's JSON.stringify does, numbers as IEEE 754 doubles in ECMAScript's
shortest round-trip form.
"""

import hashlib
import json
from decimal import Decimal

GENESIS_HASH = bytes(32)


def es_number(value) -> str:
    """ECMAScript Number::toString of the double nearest to `value` (RFC 8785 section 3.2.2.3)."""
    x = float(value)
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError("audit data holds only finite numbers")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # repr() is the shortest string that round-trips, like ECMAScript's digit choice.
    _, digit_tuple, exponent = Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent += len(digit_tuple) - len(digits)
    k = len(digits)
    n = exponent + k
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text


def canonical_json(value) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return es_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical_json(value[k]) for k in keys) + "}"
    raise ValueError(f"audit data cannot hold {type(value).__name__}")


def canonical_form(record: dict) -> str:
    """`record` holds the AuditEvent fields as JSON: hex prev_hash, ISO 8601 created_at with milliseconds."""
    return canonical_json({
        "action": record["action"],
        "actor": record["actor"],
        "created_at": record["created_at"],
        "data": record["data"],
        "prev_hash": record["prev_hash"],
        "seq": record["seq"],
        "target": record["target"],
        "tenant_id": record["tenant_id"],
    })


def record_hash(record: dict) -> bytes:
    return hashlib.sha256(canonical_form(record).encode("utf-8")).digest()
