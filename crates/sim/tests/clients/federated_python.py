"""Workload identity federation with the Python clients against the simulator: the automation app trusts
the simulated GitHub Actions issuer ({base}/_idp/github) for one subject, and the workload presents that
issuer's token as its client assertion through azure-identity's ClientAssertionCredential, its
WorkloadIdentityCredential (the token in a file, as Kubernetes projects it) and MSAL Python's
ConfidentialClientApplication with a `client_assertion`. A token for another subject is refused with
70021. Prints one result line for crates/sim/tests/clients.rs."""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclient import AUTOMATION, GRAPH_DEFAULT, Sim, claims, emit, require  # noqa: E402

require(["azure.identity", "msal"])
import azure.identity  # noqa: E402
import msal  # noqa: E402
from azure.core.exceptions import ClientAuthenticationError  # noqa: E402
from azure.identity import ClientAssertionCredential, WorkloadIdentityCredential  # noqa: E402

SUBJECT = "repo:lakeside/inspections:environment:prod"
sim = Sim()
lakeside = sim.tenant("lakeside")
out = {"event": "result", "msal": msal.__version__, "azure_identity": azure.identity.__version__}

sim.action({"action": "add_federated_credential", "app": AUTOMATION, "name": "github-prod",
            "issuer": "{sim}/_idp/github", "subject": SUBJECT})


def github_token(subject=SUBJECT):
    return sim.control("POST", "/_sim/idp/github/token", {"subject": subject})["token"]


def describe(token):
    c = claims(token)
    return {"ok": True, "appid": c.get("appid"), "tid": c.get("tid"), "appidacr": c.get("appidacr")}


try:
    cred = ClientAssertionCredential(lakeside, AUTOMATION, github_token, authority=sim.base)
    out["client_assertion_credential"] = describe(cred.get_token(GRAPH_DEFAULT).token)
except ClientAuthenticationError as e:
    out["client_assertion_credential"] = {"ok": False, "error": str(e)[:500]}

with tempfile.NamedTemporaryFile("w", suffix=".jwt", delete=False) as f:
    f.write(github_token())
    token_file = f.name
try:
    cred = WorkloadIdentityCredential(
        tenant_id=lakeside, client_id=AUTOMATION, token_file_path=token_file, authority=sim.base)
    out["workload_identity_credential"] = describe(cred.get_token(GRAPH_DEFAULT).token)
except ClientAuthenticationError as e:
    out["workload_identity_credential"] = {"ok": False, "error": str(e)[:500]}
finally:
    os.unlink(token_file)

app = msal.ConfidentialClientApplication(
    AUTOMATION, client_credential={"client_assertion": github_token},
    authority=f"{sim.base}/{lakeside}", instance_discovery=False)
result = app.acquire_token_for_client(scopes=[GRAPH_DEFAULT])
out["msal"] = describe(result["access_token"]) if "access_token" in result else {
    "ok": False, "error": {k: result.get(k) for k in ("error", "error_codes", "error_description")}}

# A token for a branch instead of the environment matches no credential.
app = msal.ConfidentialClientApplication(
    AUTOMATION, client_credential={"client_assertion": github_token("repo:lakeside/inspections:ref:refs/heads/main")},
    authority=f"{sim.base}/{lakeside}", instance_discovery=False)
refused = app.acquire_token_for_client(scopes=[GRAPH_DEFAULT])
out["wrong_subject"] = {k: refused.get(k) for k in ("error", "error_codes")}
emit(out)
