"""Produces pyjwt-rs256.json: RS256 tokens made by an independent implementation (PyJWT + cryptography).

Run by hand (pip install pyjwt cryptography); the output is committed and CI only reads it. The key
is generated for this vector file and signs nothing else; a rerun keeps the key already in the file
(the local stack's tests sign with it too) and makes the tokens afresh.
"""
import base64, hashlib, hmac, json, os

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import serialization


def b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def part(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()


def unb64(s: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")


if os.path.exists("pyjwt-rs256.json"):
    with open("pyjwt-rs256.json") as f:
        old = json.load(f)["jwk"]
    n, e, d, p, q = (unb64(old[k]) for k in ("n", "e", "d", "p", "q"))
    key = rsa.RSAPrivateNumbers(
        p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, n)
    ).private_key()
else:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
nums = key.private_numbers()
pub = nums.public_numbers
kid = "pyjwt-1"
now = 1_800_000_000
claims = {
    "iss": "https://control.test", "aud": "edgeshell-edge", "sub": "alice", "sid": "s_pyjwt",
    "region": "eu-west", "jti": "j-pyjwt-1", "iat": now, "nbf": now, "exp": now + 600,
    "scope": "session:attach", "ses": {"ends": now + 3600, "idle": 3600, "detached": None},
}
valid = jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})
pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
hs_input = part({"alg": "HS256", "kid": kid, "typ": "JWT"}) + "." + part(claims)
hs_sig = base64.urlsafe_b64encode(hmac.new(pem, hs_input.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
none_token = part({"alg": "none", "kid": kid}) + "." + part(claims) + "."

out = {
    "source": f"PyJWT {jwt.__version__} with a 2048-bit key made for this file, by make_pyjwt_vectors.py",
    "now": now,
    "jwk": {"kty": "RSA", "kid": kid, "n": b64(pub.n), "e": b64(pub.e), "d": b64(nums.d), "p": b64(nums.p), "q": b64(nums.q)},
    "public_pem": pem.decode(),
    "valid_attach": valid,
    "hs256_with_public_key_as_secret": hs_input + "." + hs_sig,
    "alg_none": none_token,
}
with open("pyjwt-rs256.json", "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
