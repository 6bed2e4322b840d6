// @azure/msal-node against the simulator: client credentials (and from the cache), device code, silent
// from the cache, refresh at home and at a GDAP customer, and MFA-required failures that surface as
// InteractionRequiredAuthError with the AADSTS code. Only the authority, knownAuthorities (instead of
// instance discovery) and the CA (NODE_EXTRA_CA_CERTS, set by the test) point it at the simulator.
// Prints JSON lines for crates/sim/tests/clients.rs.

import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

let msal;
try {
  msal = await import("@azure/msal-node");
} catch (e) {
  const here = dirname(fileURLToPath(import.meta.url));
  console.error(`missing @azure/msal-node (${e.message})\ninstall it with: npm ci --prefix ${here}`);
  process.exit(3);
}
const { ConfidentialClientApplication, PublicClientApplication, InteractionRequiredAuthError } = msal;

const GRAPH_DEFAULT = "https://graph.microsoft.com/.default";
const APP = "5f0d4d52-9c3b-4e57-a1a8-3b6b2f6a7c11";
const AUTOMATION = "8b1f7e0a-2d4c-4b1e-9a57-6c0e3d2f1a22";
const AUTOMATION_SECRET = "sim-automation-secret-Xq8~vD2kP9";
const MEGAN = "megan@lakesideit.onmicrosoft.com";
const OPS = "ops@lakesideit.onmicrosoft.com";

if (!process.env.SIM_READY) {
  console.error("SIM_READY must name the simulator's ready file");
  process.exit(2);
}
const ready = JSON.parse(readFileSync(process.env.SIM_READY, "utf8"));
const base = ready.base_url;
const host = base.replace("https://", "");
const tenant = (prefix) => ready.tenants.find((t) => t.domain.startsWith(prefix)).id;
const password = (upn) => ready.users.find((u) => u.upn === upn).password;
const emit = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const claims = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString());

async function control(method, path) {
  const r = await fetch(base + path, { method, headers: { authorization: `Bearer ${ready.control_token}` } });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status}`);
  return r.json();
}
const tokenRequests = async () => (await control("GET", "/_sim/counters")).token_requests;

const config = (tenantId, extra = {}) => ({
  auth: { clientId: APP, authority: `${base}/${tenantId}`, knownAuthorities: [host], ...extra },
});

function interactionError(e) {
  return {
    name: e?.name,
    isInteractionRequired: e instanceof InteractionRequiredAuthError,
    errorCode: e?.errorCode,
    subError: e?.subError,
    errorNo: e?.errorNo,
    hasClaims: Boolean(e?.claims),
    message: e?.errorMessage?.slice(0, 12),
  };
}

const lakeside = tenant("lakeside");
const northwind = tenant("northwind");
const out = { event: "result", library: "@azure/msal-node" };

// Client credentials, then from the application's cache.
const cca = new ConfidentialClientApplication(config(lakeside, { clientId: AUTOMATION, clientSecret: AUTOMATION_SECRET }));
const cc1 = await cca.acquireTokenByClientCredential({ scopes: [GRAPH_DEFAULT] });
let before = await tokenRequests();
const cc2 = await cca.acquireTokenByClientCredential({ scopes: [GRAPH_DEFAULT] });
out.client_credentials = {
  tid: claims(cc1.accessToken).tid,
  fromCache: [cc1.fromCache, cc2.fromCache],
  cached_token_requests: (await tokenRequests()) - before,
};

async function deviceCode(pca, upn) {
  return pca.acquireTokenByDeviceCode({
    scopes: [GRAPH_DEFAULT],
    deviceCodeCallback: (r) => emit({ event: "device_code", user_code: r.userCode, upn }),
  });
}

// Device code for Megan, silent from the cache, forced refresh, and her refresh token at a customer.
const pca = new PublicClientApplication(config(lakeside));
const signedIn = await deviceCode(pca, MEGAN);
out.device_code = { username: signedIn.account.username, amr: claims(signedIn.accessToken).amr, tid: signedIn.tenantId };
before = await tokenRequests();
const silent = await pca.acquireTokenSilent({ account: signedIn.account, scopes: [GRAPH_DEFAULT] });
out.silent = {
  fromCache: silent.fromCache,
  token_requests: (await tokenRequests()) - before,
  same_token: silent.accessToken === signedIn.accessToken,
};
before = await tokenRequests();
const refreshed = await pca.acquireTokenSilent({ account: signedIn.account, scopes: [GRAPH_DEFAULT], forceRefresh: true });
// msal-node looks access tokens up by the account's home tenant, so the customer token is asked for with
// forceRefresh: the refresh token (kept without a tenant) is redeemed at the customer's authority.
const customer = await pca.acquireTokenSilent({
  account: signedIn.account,
  scopes: [GRAPH_DEFAULT],
  authority: `${base}/${northwind}`,
  forceRefresh: true,
});
out.refresh = {
  fromCache: refreshed.fromCache,
  new_token: refreshed.accessToken !== signedIn.accessToken,
  customer_tid: claims(customer.accessToken).tid,
  token_requests: (await tokenRequests()) - before,
};

// MFA required: a password grant for Megan (the partner's policy requires MFA)...
try {
  await pca.acquireTokenByUsernamePassword({ username: MEGAN, password: password(MEGAN), scopes: [GRAPH_DEFAULT] });
  out.ropc = { thrown: false };
} catch (e) {
  out.ropc = interactionError(e);
}
// ...and the ops account's refresh after per-user MFA was enforced.
const opsApp = new PublicClientApplication(config(lakeside));
const ops = await deviceCode(opsApp, OPS);
await control("POST", "/_sim/scenarios/after-sign-in");
try {
  await opsApp.acquireTokenSilent({ account: ops.account, scopes: [GRAPH_DEFAULT], forceRefresh: true });
  out.refresh_mfa = { thrown: false };
} catch (e) {
  out.refresh_mfa = interactionError(e);
}
emit(out);
