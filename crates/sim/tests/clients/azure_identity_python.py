"""azure-identity against the simulator: ClientSecretCredential, DeviceCodeCredential (sign-in, silent from
its cache, refresh at a GDAP customer) and an MFA-required failure surfacing as AuthenticationRequiredError
with the AADSTS code. Prints one result line for crates/sim/tests/clients.rs."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclient import (  # noqa: E402
    APP, AUTOMATION, AUTOMATION_SECRET, GRAPH_DEFAULT, MEGAN, OPS, Sim, claims, emit, require,
)

require(["azure.identity", "azure.core"])
import azure.identity  # noqa: E402
from azure.identity import (  # noqa: E402
    AuthenticationRequiredError, ClientSecretCredential, DeviceCodeCredential,
)

sim = Sim()
lakeside, northwind = sim.tenant("lakeside"), sim.tenant("northwind")
out = {"event": "result", "library": "azure-identity", "version": azure.identity.__version__}


def prompt_for(upn):
    def prompt(verification_uri, user_code, expires_on):
        emit({"event": "device_code", "user_code": user_code, "upn": upn, "verification_uri": verification_uri})
    return prompt


# Client credentials, twice: the second comes from the credential's cache.
cred = ClientSecretCredential(lakeside, AUTOMATION, AUTOMATION_SECRET, authority=sim.base, disable_instance_discovery=True)
first = cred.get_token(GRAPH_DEFAULT)
before = sim.token_requests()
second = cred.get_token(GRAPH_DEFAULT)
out["client_credentials"] = {
    "tid": claims(first.token)["tid"],
    "idtyp": claims(first.token).get("idtyp"),
    "cached_token_requests": sim.token_requests() - before,
    "same_token": first.token == second.token,
}

# Device code for Megan, then silent from the cache, then her refresh token redeemed at a customer.
megan = DeviceCodeCredential(
    client_id=APP, tenant_id=lakeside, authority=sim.base, disable_instance_discovery=True,
    prompt_callback=prompt_for(MEGAN), additionally_allowed_tenants=["*"])
record = megan.authenticate(scopes=[GRAPH_DEFAULT])
before = sim.token_requests()
silent = megan.get_token(GRAPH_DEFAULT)
silent_requests = sim.token_requests() - before
before = sim.token_requests()
customer = megan.get_token(GRAPH_DEFAULT, tenant_id=northwind)
out["device_code"] = {
    "username": record.username,
    "tenant_id": record.tenant_id,
    "amr": claims(silent.token)["amr"],
}
out["silent"] = {"token_requests": silent_requests}
out["refresh"] = {
    "token_requests": sim.token_requests() - before,
    "customer_tid": claims(customer.token)["tid"],
    "customer_idp": claims(customer.token).get("idp"),
}

# MFA required: ops signs in without MFA, per-user MFA is then enforced, and a refresh (forced by a claims
# challenge) fails. With automatic authentication off, azure-identity raises AuthenticationRequiredError.
ops = DeviceCodeCredential(
    client_id=APP, tenant_id=lakeside, authority=sim.base, disable_instance_discovery=True,
    prompt_callback=prompt_for(OPS), disable_automatic_authentication=True)
ops.authenticate(scopes=[GRAPH_DEFAULT])
sim.control("POST", "/_sim/scenarios/after-sign-in")
challenge = json.dumps({"access_token": {"nbf": {"essential": True, "value": "1700000000"}}})
try:
    ops.get_token(GRAPH_DEFAULT, claims=challenge)
    out["mfa_required"] = {"raised": None}
except AuthenticationRequiredError as e:
    body = json.loads(e.response.text()) if e.response is not None else {}
    out["mfa_required"] = {
        "raised": type(e).__name__,
        "status": e.response.status_code if e.response is not None else None,
        "error": body.get("error"),
        "error_codes": body.get("error_codes"),
        "suberror": body.get("suberror"),
    }
emit(out)
