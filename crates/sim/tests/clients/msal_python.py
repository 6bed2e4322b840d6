"""MSAL Python against the simulator: client credentials, device code, silent from cache, refresh (at home
and at a GDAP customer) and MFA-required failures. Prints one result line for crates/sim/tests/clients.rs."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclient import (  # noqa: E402
    APP, AUTOMATION, AUTOMATION_SECRET, GRAPH_DEFAULT, MEGAN, OPS, Sim, claims, emit, require,
)

require(["msal", "requests"])
import msal  # noqa: E402

sim = Sim()
lakeside, northwind, litware = sim.tenant("lakeside"), sim.tenant("northwind"), sim.tenant("litware")
out = {"event": "result", "library": "msal", "version": msal.__version__}


def authority(tenant):
    return f"{sim.base}/{tenant}"


def error_of(result):
    return {k: result.get(k) for k in ("error", "error_codes", "suberror", "claims")} if result else None


# Client credentials, then the same request served from MSAL's cache.
cca = msal.ConfidentialClientApplication(
    AUTOMATION, client_credential=AUTOMATION_SECRET, authority=authority(lakeside), instance_discovery=False)
first = cca.acquire_token_for_client(scopes=[GRAPH_DEFAULT])
before = sim.token_requests()
second = cca.acquire_token_for_client(scopes=[GRAPH_DEFAULT])
out["client_credentials"] = {
    "ok": "access_token" in first,
    "error": error_of(first) if "access_token" not in first else None,
    "tid": claims(first["access_token"])["tid"] if "access_token" in first else None,
    "roles": claims(first["access_token"]).get("roles") if "access_token" in first else None,
    "cached_token_requests": sim.token_requests() - before,
    "cached_source": second.get("token_source"),
    "same_token": first.get("access_token") == second.get("access_token"),
}


def device_code_sign_in(app, upn):
    flow = app.initiate_device_flow(scopes=[GRAPH_DEFAULT])
    if "user_code" not in flow:
        raise SystemExit(f"device flow did not start: {flow}")
    emit({"event": "device_code", "user_code": flow["user_code"], "upn": upn})
    return app.acquire_token_by_device_flow(flow)


# Device code for Megan at the partner tenant.
pca = msal.PublicClientApplication(APP, authority=authority(lakeside), instance_discovery=False)
signed_in = device_code_sign_in(pca, MEGAN)
out["device_code"] = {
    "ok": "access_token" in signed_in,
    "error": error_of(signed_in) if "access_token" not in signed_in else None,
    "amr": claims(signed_in["access_token"])["amr"] if "access_token" in signed_in else None,
    "id_token_username": signed_in.get("id_token_claims", {}).get("preferred_username"),
    "has_refresh_token": "refresh_token" in signed_in,
}
account = pca.get_accounts(username=MEGAN)[0]

# Silent: served from the cache without any token request.
before = sim.token_requests()
silent = pca.acquire_token_silent([GRAPH_DEFAULT], account=account)
out["silent"] = {
    "ok": bool(silent and "access_token" in silent),
    "token_requests": sim.token_requests() - before,
    "source": silent.get("token_source") if silent else None,
    "same_token": bool(silent) and silent.get("access_token") == signed_in.get("access_token"),
}

# Refresh: forced at home, then the partner refresh token redeemed at a customer through a second
# application object sharing the cache (MSAL keys refresh tokens without a tenant).
before = sim.token_requests()
refreshed = pca.acquire_token_silent_with_error([GRAPH_DEFAULT], account=account, force_refresh=True)
customer_app = msal.PublicClientApplication(
    APP, authority=authority(northwind), instance_discovery=False, token_cache=pca.token_cache)
customer_account = customer_app.get_accounts(username=MEGAN)[0]
at_customer = customer_app.acquire_token_silent_with_error([GRAPH_DEFAULT], account=customer_account)
litware_app = msal.PublicClientApplication(
    APP, authority=authority(litware), instance_discovery=False, token_cache=pca.token_cache)
at_litware = litware_app.acquire_token_silent_with_error(
    [GRAPH_DEFAULT], account=litware_app.get_accounts(username=MEGAN)[0])
out["refresh"] = {
    "ok": bool(refreshed and "access_token" in refreshed),
    "token_requests": sim.token_requests() - before,
    "new_token": bool(refreshed) and refreshed.get("access_token") != signed_in.get("access_token"),
    "customer_tid": claims(at_customer["access_token"])["tid"] if at_customer and "access_token" in at_customer else None,
    "customer_error": error_of(at_customer) if at_customer and "access_token" not in at_customer else None,
    "litware_error": error_of(at_litware),
}

# MFA required: the ops account signs in without MFA (the partner's policy excludes it), then per-user MFA
# is enforced for it and its refresh fails. (A password grant is not tried here: MSAL Python's home-realm
# discovery before it drops the authority's port, so it only reaches a simulator listening on 443.)
ops_app = msal.PublicClientApplication(APP, authority=authority(lakeside), instance_discovery=False)
ops_tokens = device_code_sign_in(ops_app, OPS)
sim.control("POST", "/_sim/scenarios/after-sign-in")
ops_refresh = ops_app.acquire_token_silent_with_error(
    [GRAPH_DEFAULT], account=ops_app.get_accounts(username=OPS)[0], force_refresh=True)
out["mfa_required"] = {
    "ops_signed_in": "access_token" in ops_tokens,
    "ops_amr": claims(ops_tokens["access_token"])["amr"] if "access_token" in ops_tokens else None,
    "refresh": error_of(ops_refresh),
}
emit(out)
