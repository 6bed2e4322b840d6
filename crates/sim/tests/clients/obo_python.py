"""MSAL Python's on-behalf-of flow against the simulator: Megan signs in by device code to the partner's
automation app as a web API (`api://<automation>/access_as_user`), and the automation app, a confidential
client, redeems that token for a Graph token as Megan: first refused for want of consent (65001), then,
once an administrator consented, granted. Prints one result line for crates/sim/tests/clients.rs."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclient import APP, AUTOMATION, AUTOMATION_SECRET, MEGAN, Sim, claims, emit, require  # noqa: E402

require(["msal"])
import msal  # noqa: E402

sim = Sim()
lakeside = sim.tenant("lakeside")
authority = f"{sim.base}/{lakeside}"
out = {"event": "result", "library": "msal", "version": msal.__version__}

pca = msal.PublicClientApplication(APP, authority=authority, instance_discovery=False)
flow = pca.initiate_device_flow(scopes=[f"api://{AUTOMATION}/access_as_user"])
if "user_code" not in flow:
    raise SystemExit(f"device flow did not start: {flow}")
emit({"event": "device_code", "user_code": flow["user_code"], "upn": MEGAN})
signed_in = pca.acquire_token_by_device_flow(flow)
user_token = signed_in.get("access_token")
out["api_token"] = {"ok": bool(user_token), "aud": claims(user_token)["aud"] if user_token else None,
                    "error": None if user_token else signed_in}

middle = msal.ConfidentialClientApplication(
    AUTOMATION, client_credential=AUTOMATION_SECRET, authority=authority, instance_discovery=False)
refused = middle.acquire_token_on_behalf_of(user_token, scopes=["https://graph.microsoft.com/User.Read"])
out["without_consent"] = {k: refused.get(k) for k in ("error", "error_codes", "suberror")}

sim.action({"action": "grant_consent", "tenant": lakeside, "app": AUTOMATION, "delegated": ["User.Read"],
            "application": ["Directory.Read.All", "Organization.Read.All", "User.Read.All", "Policy.Read.All"]})
# A new application object: MSAL Python keeps the 400 answer of the same request for 60 seconds.
middle = msal.ConfidentialClientApplication(
    AUTOMATION, client_credential=AUTOMATION_SECRET, authority=authority, instance_discovery=False)
granted = middle.acquire_token_on_behalf_of(user_token, scopes=["https://graph.microsoft.com/User.Read"])
if "access_token" in granted:
    c = claims(granted["access_token"])
    out["granted"] = {"ok": True, "appid": c["appid"], "upn": c["upn"], "scp": c["scp"], "amr": c["amr"]}
else:
    out["granted"] = {"ok": False, "error": {k: granted.get(k) for k in ("error", "error_codes", "error_description")}}
emit(out)
