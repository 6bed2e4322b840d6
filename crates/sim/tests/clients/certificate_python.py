"""Certificate credentials of the Python clients against the simulator: azure-identity's
CertificateCredential (RS256, SHA-1 thumbprint in `x5t`, padded) and MSAL Python's
ConfidentialClientApplication with a certificate (PS256, SHA-256 thumbprint in `x5t#S256`, padded, and the
chain in `x5c`), and with a SHA-1 thumbprint given by hand (RS256). Both libraries put `time.time()` floats in
`exp` and `iat`. Prints one result line for crates/sim/tests/clients.rs."""

import base64
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclient import AUTOMATION, GRAPH_DEFAULT, Sim, claims, emit, require  # noqa: E402

require(["azure.identity", "msal", "cryptography"])
import azure.identity  # noqa: E402
import msal  # noqa: E402
from azure.identity import CertificateCredential  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

sim = Sim()
lakeside = sim.tenant("lakeside")
out = {"event": "result", "msal": msal.__version__, "azure_identity": azure.identity.__version__}

# A self-signed certificate, uploaded to the automation app as an administrator would in the portal.
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "automation.example")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (
    x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
    .sign(key, hashes.SHA256())
)
cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
key_pem = key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
sim.action({"action": "add_app_certificate", "app": AUTOMATION, "name": "python-cert", "pem": cert_pem})




def header_of(jwt):
    part = jwt.split(".")[0]
    part += "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(part))


class Recorder:
    """A requests-compatible session that remembers the client assertion of each token request."""

    def __init__(self):
        import requests
        self.session = requests.Session()
        self.assertions = []

    def post(self, url, data=None, **kwargs):
        if isinstance(data, dict) and data.get("client_assertion"):
            assertion = data["client_assertion"]
            self.assertions.append(assertion.decode() if isinstance(assertion, bytes) else assertion)
        return self.session.post(url, data=data, **kwargs)

    def get(self, url, **kwargs):
        return self.session.get(url, **kwargs)

    def close(self):
        self.session.close()


def describe(assertion):
    h = header_of(assertion)
    c = claims(assertion)
    return {
        "alg": h.get("alg"),
        "x5t_padded": h.get("x5t", "").endswith("="),
        "x5t_s256_padded": h.get("x5t#S256", "").endswith("="),
        "has_x5c": "x5c" in h,
        "exp_is_float": isinstance(c.get("exp"), float),
    }


# azure-identity: certificate and key in one PEM.
credential = CertificateCredential(
    lakeside, AUTOMATION, certificate_data=(key_pem + cert_pem).encode(), authority=sim.base,
    disable_instance_discovery=True)
try:
    token = credential.get_token(GRAPH_DEFAULT)
    out["azure_identity"] = {"ok": True, "tid": claims(token.token)["tid"], "appidacr": claims(token.token)["appidacr"]}
except Exception as e:  # noqa: BLE001 - the test shows what failed
    out["azure_identity"] = {"ok": False, "error": f"{type(e).__name__}: {e}"}

# MSAL Python with the public certificate: PS256, x5t#S256 and x5c.
recorder = Recorder()
app = msal.ConfidentialClientApplication(
    AUTOMATION, client_credential={"private_key": key_pem, "public_certificate": cert_pem},
    authority=f"{sim.base}/{lakeside}", instance_discovery=False, http_client=recorder)
result = app.acquire_token_for_client(scopes=[GRAPH_DEFAULT])
out["msal_sha256"] = {
    "ok": "access_token" in result,
    "error": {k: result.get(k) for k in ("error", "error_codes", "error_description")} if "access_token" not in result else None,
    "appidacr": claims(result["access_token"])["appidacr"] if "access_token" in result else None,
    "assertion": describe(recorder.assertions[0]) if recorder.assertions else None,
}

# MSAL Python with a SHA-1 thumbprint given by hand: RS256 and x5t.
recorder = Recorder()
thumbprint = cert.fingerprint(hashes.SHA1()).hex()
app = msal.ConfidentialClientApplication(
    AUTOMATION, client_credential={"private_key": key_pem, "thumbprint": thumbprint},
    authority=f"{sim.base}/{lakeside}", instance_discovery=False, http_client=recorder)
result = app.acquire_token_for_client(scopes=[GRAPH_DEFAULT])
out["msal_sha1"] = {
    "ok": "access_token" in result,
    "error": {k: result.get(k) for k in ("error", "error_codes", "error_description")} if "access_token" not in result else None,
    "assertion": describe(recorder.assertions[0]) if recorder.assertions else None,
}

emit(out)
