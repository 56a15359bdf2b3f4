// bearer-guard interop: an independent DPoP client (RFC 9449) made with `jose`, for
// tests/interop.rs. It generates its own key, asks oidc-provider for a DPoP-bound token
// (client_credentials, answering a use_dpop_nonce challenge once), then signs one proof per
// requested API call. Nothing here comes from bearer-guard.
//
//   node dpop_client.mjs '<json>'
//   input:  {"token_endpoint", "client_id", "client_secret", "resource", "scope",
//            "alg" ("ES256" | "EdDSA"), "calls": [{"htm", "htu"}, ...]}
//   output: one line, {"access_token", "token_type", "jkt", "proofs": [...]}
import * as crypto from 'node:crypto';

import * as jose from 'jose';

const input = JSON.parse(process.argv[2]);
const alg = input.alg ?? 'ES256';
const { privateKey, publicKey } = await jose.generateKeyPair(alg, { crv: alg === 'EdDSA' ? 'Ed25519' : undefined });
const jwk = await jose.exportJWK(publicKey);
const jkt = await jose.calculateJwkThumbprint(jwk, 'sha256');

const proof = (htm, htu, extra = {}) =>
  new jose.SignJWT({ htm, htu, jti: crypto.randomUUID(), ...extra })
    .setProtectedHeader({ alg, typ: 'dpop+jwt', jwk })
    .setIssuedAt()
    .sign(privateKey);

const tokenRequest = async (nonce) => {
  const body = new URLSearchParams({ grant_type: 'client_credentials', resource: input.resource });
  if (input.scope) body.set('scope', input.scope);
  const basic = Buffer.from(`${encodeURIComponent(input.client_id)}:${encodeURIComponent(input.client_secret)}`).toString('base64');
  return fetch(input.token_endpoint, {
    method: 'POST',
    headers: {
      authorization: `Basic ${basic}`,
      'content-type': 'application/x-www-form-urlencoded',
      dpop: await proof('POST', input.token_endpoint, nonce ? { nonce } : {}),
    },
    body,
  });
};

let res = await tokenRequest();
if (res.status === 400 && res.headers.get('dpop-nonce')) {
  res = await tokenRequest(res.headers.get('dpop-nonce'));
}
const token = await res.json();
if (!res.ok) {
  console.error(`token request failed: ${res.status} ${JSON.stringify(token)}`);
  process.exit(1);
}
const ath = jose.base64url.encode(crypto.createHash('sha256').update(token.access_token).digest());
const proofs = [];
for (const call of input.calls ?? []) {
  proofs.push(await proof(call.htm, call.htu, { ath }));
}
console.log(JSON.stringify({ access_token: token.access_token, token_type: token.token_type, jkt, proofs }));
