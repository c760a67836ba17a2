"""Checks the X-Ct-Hmac-Sha256 verification function shown in docs/receiving.md
against the signature test vectors.

Usage: python3 docs/examples/verify.py testdata/signature-vectors.json
"""

import base64
import hashlib
import hmac
import json
import sys
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Optional


def verify_webhook(secret: str, date: str, body: bytes, signature: str) -> bool:
    """Report whether signature (the X-Ct-Hmac-Sha256 header) was made with
    secret over "Date: " + date + "\\n" + body. body must be the raw request
    body bytes, exactly as received."""
    if not secret:
        return False  # never verify with an empty key (e.g. a missing setting)
    key = secret.encode("ascii")  # the secret's ASCII bytes, not hex-decoded
    message = b"Date: " + date.encode() + b"\n" + body
    expected = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest())
    return hmac.compare_digest(expected, (signature or "").encode())  # constant time


def date_is_fresh(date: str, now: Optional[datetime] = None) -> bool:
    """Report whether the Date header is within 5 minutes of now."""
    try:
        sent = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return False
    if sent is None or sent.tzinfo is None:
        return False
    now = now or datetime.now(timezone.utc)
    return abs(now - sent) <= timedelta(minutes=5)


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python3 verify.py <signature-vectors.json>", file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        vectors = json.load(f).get("vectors", [])
    if not vectors:
        print("no vectors in " + sys.argv[1], file=sys.stderr)
        return 2
    failed = 0
    for v in vectors:
        body = base64.b64decode(v["body_base64"], validate=True)
        tampered = body + b" "
        sent = parsedate_to_datetime(v["date"])
        sig = v["x_ct_hmac_sha256"]
        problem = None
        if not verify_webhook(v["secret"], v["date"], body, sig):
            problem = "expected signature rejected"
        elif verify_webhook(v["secret"], v["date"], tampered, sig):
            problem = "tampered body accepted"
        elif not date_is_fresh(v["date"], sent + timedelta(minutes=4)) or date_is_fresh(
            v["date"], sent + timedelta(minutes=6)
        ):
            problem = "Date freshness check wrong"
        if problem:
            print("FAIL %s: %s" % (v["name"], problem))
            failed += 1
        else:
            print("ok   %s" % v["name"])
    if failed:
        print("python: %d of %d vectors failed" % (failed, len(vectors)))
        return 1
    print("python: all %d vectors passed" % len(vectors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
