"""The OAuth 2.0 job with requests, by a client that knows every URL in advance (issue 15).

The baseline for `PROVIDER=oauth2` with discovery and JWKS validation: the same token request
(client credentials, Basic client authentication, `audience`) and the same key fetch, but at
OAUTH2_TOKEN_URL and OAUTH2_JWKS_URL as given, so no discovery request. One `requests.Session`,
so both requests share one kept-alive connection, as the pipe's do. The token is checked as
the pipe checks it: the RS256 signature against the JWK whose `kid` the header names, then
`iss`, `aud` and `exp`; then the dotenv file is written (mode 0600).

Python's standard library has no RSA, so the signature is checked here in a few lines:
RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2) with the EMSA-PKCS1-v1_5 encoding of a
SHA-256 digest (§9.2, the DigestInfo prefix from its note 1); the key's `n` and `e` are
base64url big-endian integers (RFC 7518 §6.3.1), the JWK Set a `keys` array (RFC 7517 §5).
"""

import base64
import hashlib
import hmac
import json
import os
import time

import requests

# DER of DigestInfo for SHA-256, before the 32-byte digest (RFC 8017 §9.2, note 1).
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
LEEWAY_S = 60


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rs256_ok(signed: bytes, signature: bytes, jwk: dict) -> bool:
    n = int.from_bytes(b64url(jwk["n"]), "big")
    e = int.from_bytes(b64url(jwk["e"]), "big")
    k = (n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    s = int.from_bytes(signature, "big")
    if s >= n:
        return False
    em = pow(s, e, n).to_bytes(k, "big")
    t = SHA256_DIGEST_INFO + hashlib.sha256(signed).digest()
    expected = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return hmac.compare_digest(em, expected)


def verify(token: str, jwks: dict, issuer: str, audience: str) -> None:
    head, body, sig = token.split(".")
    header = json.loads(b64url(head))
    claims = json.loads(b64url(body))
    if header.get("alg") != "RS256":
        raise SystemExit(f"token: alg {header.get('alg')!r} is not RS256")
    keys = [k for k in jwks["keys"] if k.get("kty") == "RSA" and k.get("kid") == header.get("kid")]
    if len(keys) != 1 or not rs256_ok(f"{head}.{body}".encode(), b64url(sig), keys[0]):
        raise SystemExit("token: the signature does not verify with the issuer's key")
    if claims.get("iss") not in (issuer.rstrip("/"), issuer.rstrip("/") + "/"):
        raise SystemExit(f"token: iss {claims.get('iss')!r} is not {issuer}")
    aud = claims.get("aud")
    if audience not in (aud if isinstance(aud, list) else [aud]):
        raise SystemExit(f"token: aud {aud!r} does not name {audience}")
    if claims.get("exp", 0) + LEEWAY_S < time.time():
        raise SystemExit("token: expired")


def main() -> None:
    env = os.environ
    with requests.Session() as session:
        session.verify = env["CA_BUNDLE"]
        response = session.post(
            env["OAUTH2_TOKEN_URL"],
            auth=(env["CLIENT_ID"], env["CLIENT_SECRET"]),
            data={"grant_type": "client_credentials", "audience": env["AUDIENCE"]},
            timeout=30,
        )
        response.raise_for_status()
        token = response.json()["access_token"]
        response = session.get(env["OAUTH2_JWKS_URL"], timeout=30)
        response.raise_for_status()
        jwks = response.json()
    verify(token, jwks, env["ISSUER"], env["AUDIENCE"])
    fd = os.open(env["OUTPUT_FILE"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"OAUTH_ACCESS_TOKEN={token}\n")


if __name__ == "__main__":
    main()
