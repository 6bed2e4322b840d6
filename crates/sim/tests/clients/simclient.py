"""Helpers shared by the Python client scripts: the simulator's ready file, its control API, and the
line protocol with the Rust test that runs the script (one JSON object per stdout line).

The scripts use the official libraries unmodified; only the authority, instance discovery and the CA
bundle (REQUESTS_CA_BUNDLE / SSL_CERT_FILE, set by the test) point them at the simulator.
"""

import base64
import json
import os
import sys
import urllib.request
import ssl

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
APP = "5f0d4d52-9c3b-4e57-a1a8-3b6b2f6a7c11"
AUTOMATION = "8b1f7e0a-2d4c-4b1e-9a57-6c0e3d2f1a22"
AUTOMATION_SECRET = "sim-automation-secret-Xq8~vD2kP9"
MEGAN = "megan@lakesideit.onmicrosoft.com"
OPS = "ops@lakesideit.onmicrosoft.com"


def require(module_names):
    """Imports the libraries under test, failing loudly (exit 3) when one is missing."""
    missing = []
    for name in module_names:
        try:
            __import__(name)
        except ImportError as e:
            missing.append(f"{name} ({e})")
    if missing:
        here = os.path.dirname(os.path.abspath(__file__))
        print(
            "missing Python libraries: " + ", ".join(missing)
            + f"\ninstall them with: python3 -m pip install -r {here}/requirements.txt",
            file=sys.stderr,
        )
        sys.exit(3)


class Sim:
    def __init__(self):
        path = os.environ.get("SIM_READY")
        if not path:
            print("SIM_READY must name the simulator's ready file", file=sys.stderr)
            sys.exit(2)
        with open(path) as f:
            self.ready = json.load(f)
        self.base = self.ready["base_url"]
        self.host = self.base.split("://", 1)[1]
        self._ssl = ssl.create_default_context(cafile=self.ready["ca_cert"])

    def tenant(self, prefix):
        for t in self.ready["tenants"]:
            if t["domain"].startswith(prefix):
                return t["id"]
        raise KeyError(prefix)

    def password(self, upn):
        for u in self.ready["users"]:
            if u["upn"].lower() == upn.lower():
                return u["password"]
        raise KeyError(upn)

    def control(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.ready["control_token"])
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, context=self._ssl) as resp:
            return json.loads(resp.read())

    def action(self, body):
        """Changes the simulated world, as an administrator would in the admin centre."""
        return self.control("POST", "/_sim/actions", body)

    def token_requests(self):
        return self.control("GET", "/_sim/counters")["token_requests"]


def emit(obj):
    """Writes one event line for the Rust test."""
    print(json.dumps(obj), flush=True)


def claims(jwt):
    payload = jwt.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))
