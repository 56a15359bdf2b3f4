// bearer-guard interop: a real authorization server for tests/interop.rs.
//
// oidc-provider (panva, OpenID Certified) on 127.0.0.1, issuing RFC 9068 JWT access tokens
// through the client_credentials grant, with resource indicators (RFC 8707) choosing `aud`.
// Started by the Rust test as a child process; runs by hand too:
//
//   cd interop && npm ci && IDP_PORT=4000 node idp.mjs
//
// Settings (environment, all optional):
//   IDP_PORT        port on 127.0.0.1; 0 (default) takes a free one
//   IDP_ISSUER      issuer identifier; default http://127.0.0.1:<port>. It may name another
//                   port than the one listened on (to mint tokens "for" an issuer that is down)
//   IDP_KEYS        private key pool file, created and filled on first use (default
//                   ./keys.private.json). Kids: rsa-1, rsa-2 (RS256), ec-1, ec-2 (ES256),
//                   ed-1, ed-2 (EdDSA, Ed25519). Share one file between instances to give them
//                   the same keys. An entry may also be given as {"alg", "pem"} (a PKCS#8
//                   private key) to make the IdP sign with a key the test knows.
//   IDP_KIDS        kids to publish, in order (default rsa-1,ec-1,ed-1). Tokens of an
//                   algorithm are signed with the first published key of that algorithm.
//   IDP_TTL         access-token lifetime, seconds (default 600)
//   IDP_SHORT_TTL   lifetime for the client "short-lived" (default 1)
//   IDP_SCOPES      scopes every resource offers (default: the World Mappers scopes)
//   IDP_RESOURCES   comma list of accepted resource indicators (default: any absolute URI)
//   IDP_OPAQUE_RESOURCES  comma list of resource indicators whose access tokens are opaque
//                   (checked by RFC 7662 introspection at /token/introspection) instead of JWTs
//   IDP_DPOP_NONCE  1: the token endpoint requires a server nonce in DPoP proofs (RFC 9449 §8:
//                   400 use_dpop_nonce with a DPoP-Nonce header first). Default 0.
//
// Mutual TLS (RFC 8705), on when IDP_TLS_CERT and IDP_TLS_KEY are set (without them nothing
// changes: plain HTTP, no mTLS clients):
//   IDP_TLS_CERT    PEM file: the server certificate (chain), for 127.0.0.1. The IdP then serves
//                   HTTPS and its default issuer is https://127.0.0.1:<port>
//   IDP_TLS_KEY     PEM file: its private key
//   IDP_TLS_CA      PEM file: the CA(s) of tls_client_auth client certificates. The server asks
//                   every client for a certificate (node:https requestCert) but lets a
//                   connection without one, or with one that does not verify, through
//                   (rejectUnauthorized false), so that self-signed certificates reach
//                   oidc-provider; tls_client_auth then requires a certificate that verified
//                   against this CA (certificateAuthorized), self_signed_tls_client_auth one
//                   registered in the client's jwks.
//   IDP_MTLS_SELF_SIGNED  PEM file: the self-signed certificate registered (jwks, x5c) for the
//                   client self-signed-tls
//   IDP_MTLS_ALIAS  1: the issuer's own port asks for no client certificate; a second HTTPS
//                   listener does, published as mtls_endpoint_aliases.token_endpoint (RFC 8705
//                   §5), its port in READY as "mtls_port". Default 0.
//   IDP_DEFAULT_RESOURCE  the resource indicator of a token request that names none (for
//                   clients that send Auth0's `audience` instead); default: none (an opaque
//                   token without audience)
// oidc-provider's mTLS feature is on with certificateBoundAccessTokens, tlsClientAuth and
// selfSignedTlsClientAuth; getCertificate is the connection's peer certificate (an
// X509Certificate). A token issued to a client registered with
// tls_client_certificate_bound_access_tokens carries cnf.x5t#S256 (a JWT) of that certificate.
//
// DPoP (RFC 9449) is on: a token request carrying a DPoP proof gets a DPoP-bound token
// (token_type DPoP, cnf.jkt the proof key's thumbprint), from any client.
//
// Introspection (RFC 7662, /token/introspection) and revocation (RFC 7009,
// /token/revocation) are on. Any confidential client may introspect; a token is revoked by
// the client it was issued to. A request naming no resource gets an opaque token with no
// audience (stock oidc-provider behaviour).
//
// JWT introspection responses (RFC 9701, oidc-provider's `jwtIntrospection` feature) are on:
// an introspection request with `Accept: application/token-introspection+jwt` is answered
// with a JWT signed with the client's `introspection_signed_response_alg` (oidc-provider's
// default RS256; the first published key of that algorithm), `typ`
// token-introspection+jwt, `iss` the issuer, `aud` the introspecting client, and the RFC 7662
// members in `token_introspection`. Requests asking for JSON still get JSON. The metadata
// lists `introspection_signing_alg_values_supported`. No encryption (JWE) of responses.
//
// Clients (grant client_credentials only; the secret is "<client_id>-secret"):
//   rs256-basic, rs256-post, es256-basic, es256-post, eddsa-basic, eddsa-post
//       <alg>-<method>: signed with <alg>, registered for client_secret_<method>
//   short-lived   RS256, client_secret_basic, lifetime IDP_SHORT_TTL
//   dpop-basic    ES256, client_secret_basic, dpop_bound_access_tokens: a token request
//                 without a DPoP proof is refused
//   introspector  client_secret_basic: the resource server's own client, for introspection;
//                 introspection_signed_response_alg RS256
//   introspector-es256  the same, with introspection_signed_response_alg ES256
// With mutual TLS (IDP_TLS_CERT) also, each with tls_client_certificate_bound_access_tokens,
// ES256, no secret:
//   tls-client    tls_client_auth, tls_client_auth_subject_dn "CN=tls-client": a certificate
//                 with that subject (RFC 4514), verified against IDP_TLS_CA
//   self-signed-tls  self_signed_tls_client_auth, the certificate of IDP_MTLS_SELF_SIGNED
//                 (registered only when that is set)
//
// When listening, prints one line to stdout: `READY {"issuer":..,"port":..,"kids":[..]}`
// (and "mtls_port" with IDP_MTLS_ALIAS=1).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as jose from 'jose';
import Provider, { errors } from 'oidc-provider';

const setting = (name, fallback) => {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : v;
};
const list = (s) => s.split(',').map((x) => x.trim()).filter((x) => x.length > 0);

const dir = path.dirname(fileURLToPath(import.meta.url));
const keysFile = path.resolve(dir, setting('IDP_KEYS', 'keys.private.json'));
const publishedKids = list(setting('IDP_KIDS', 'rsa-1,ec-1,ed-1'));
const ttl = Number(setting('IDP_TTL', '600'));
const shortTtl = Number(setting('IDP_SHORT_TTL', '1'));
const scopes = setting('IDP_SCOPES', 'geocode:location reverse-geocode:location directions');
const resources = process.env.IDP_RESOURCES ? new Set(list(process.env.IDP_RESOURCES)) : null;
const dpopNonce = setting('IDP_DPOP_NONCE', '0') === '1';
const opaqueResources = new Set(list(setting('IDP_OPAQUE_RESOURCES', '')));
const fallbackResource = setting('IDP_DEFAULT_RESOURCE', undefined);
const readFile = (name) => {
  const file = setting(name, undefined);
  return file === undefined ? undefined : fs.readFileSync(file);
};
const tlsCert = readFile('IDP_TLS_CERT');
const tlsKey = readFile('IDP_TLS_KEY');
if ((tlsCert === undefined) !== (tlsKey === undefined)) {
  throw new Error('IDP_TLS_CERT and IDP_TLS_KEY go together');
}
const mtls = tlsCert !== undefined;
const tlsCa = readFile('IDP_TLS_CA');
const selfSigned = readFile('IDP_MTLS_SELF_SIGNED');
const mtlsAlias = setting('IDP_MTLS_ALIAS', '0') === '1';
if (!mtls && (tlsCa || selfSigned || mtlsAlias)) {
  throw new Error('IDP_TLS_CA, IDP_MTLS_SELF_SIGNED and IDP_MTLS_ALIAS need IDP_TLS_CERT and IDP_TLS_KEY');
}

// ---- keys ----------------------------------------------------------------------------------
const KINDS = {
  rsa: { alg: 'RS256', options: { modulusLength: 2048 } },
  ec: { alg: 'ES256', options: {} },
  ed: { alg: 'EdDSA', options: { crv: 'Ed25519' } },
};
const POOL = ['rsa-1', 'rsa-2', 'ec-1', 'ec-2', 'ed-1', 'ed-2'];

async function keyPool() {
  const pool = fs.existsSync(keysFile) ? JSON.parse(fs.readFileSync(keysFile, 'utf8')) : {};
  for (const [kid, entry] of Object.entries(pool)) {
    if (typeof entry.pem === 'string') {
      const key = await jose.importPKCS8(entry.pem, entry.alg, { extractable: true });
      pool[kid] = { ...(await jose.exportJWK(key)), kid, alg: entry.alg, use: 'sig' };
    }
  }
  const missing = POOL.filter((kid) => !pool[kid]);
  for (const kid of missing) {
    const { alg, options } = KINDS[kid.split('-')[0]];
    const { privateKey } = await jose.generateKeyPair(alg, { ...options, extractable: true });
    pool[kid] = { ...(await jose.exportJWK(privateKey)), kid, alg, use: 'sig' };
  }
  if (missing.length > 0) {
    // Write then rename: an instance starting meanwhile never reads half a file.
    const tmp = `${keysFile}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(pool, null, 2)}\n`, { mode: 0o600 });
    fs.renameSync(tmp, keysFile);
  }
  return pool;
}

const pool = await keyPool();
for (const kid of publishedKids) {
  if (!pool[kid]) throw new Error(`IDP_KIDS: unknown kid ${kid} (the pool has ${POOL.join(', ')})`);
}
const published = publishedKids.map((kid) => pool[kid]);
const signingKid = (alg) => published.find((k) => k.alg === alg)?.kid;

// ---- clients -------------------------------------------------------------------------------
const CLIENTS = [];
for (const alg of ['RS256', 'ES256', 'EdDSA']) {
  for (const method of ['basic', 'post']) {
    CLIENTS.push({ id: `${alg.toLowerCase()}-${method}`, alg, method, ttl });
  }
}
CLIENTS.push({ id: 'short-lived', alg: 'RS256', method: 'basic', ttl: shortTtl });
CLIENTS.push({ id: 'dpop-basic', alg: 'ES256', method: 'basic', ttl, dpopBound: true });
CLIENTS.push({ id: 'introspector', alg: 'RS256', method: 'basic', ttl, introspectionAlg: 'RS256' });
CLIENTS.push({
  id: 'introspector-es256', alg: 'ES256', method: 'basic', ttl, introspectionAlg: 'ES256',
});
if (mtls) {
  CLIENTS.push({ id: 'tls-client', alg: 'ES256', method: 'tls', ttl });
  if (selfSigned) {
    const cert = new crypto.X509Certificate(selfSigned);
    const jwk = await jose.exportJWK(cert.publicKey);
    const x5c = [cert.raw.toString('base64')];
    CLIENTS.push({ id: 'self-signed-tls', alg: 'ES256', method: 'self-signed', ttl, jwks: { keys: [{ ...jwk, x5c }] } });
  }
}
const clientById = new Map(CLIENTS.map((c) => [c.id, c]));

const clientMetadata = (c) => {
  const common = {
    client_id: c.id,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  };
  switch (c.method) {
    case 'tls':
      return {
        ...common,
        token_endpoint_auth_method: 'tls_client_auth',
        tls_client_auth_subject_dn: `CN=${c.id}`,
        tls_client_certificate_bound_access_tokens: true,
      };
    case 'self-signed':
      return {
        ...common,
        token_endpoint_auth_method: 'self_signed_tls_client_auth',
        jwks: c.jwks,
        tls_client_certificate_bound_access_tokens: true,
      };
    default:
      return {
        ...common,
        client_secret: `${c.id}-secret`,
        token_endpoint_auth_method: `client_secret_${c.method}`,
        ...(c.dpopBound ? { dpop_bound_access_tokens: true } : {}),
        ...(c.introspectionAlg ? { introspection_signed_response_alg: c.introspectionAlg } : {}),
      };
  }
};

// ---- mutual TLS ----------------------------------------------------------------------------
// The connection's client certificate, if it sent one (node:tls, an X509Certificate).
const peerCertificate = (ctx) => ctx.req.socket.getPeerX509Certificate?.() ?? undefined;
// Node lists the subject's RDNs one a line, most significant first; RFC 4514 the reverse,
// comma-separated.
const rfc4514 = (subject) => subject.split('\n').reverse().join(',');
const mtlsFeature = {
  enabled: true,
  certificateBoundAccessTokens: true,
  tlsClientAuth: true,
  selfSignedTlsClientAuth: true,
  getCertificate: peerCertificate,
  // node:https verified the chain against IDP_TLS_CA (rejectUnauthorized false only lets a
  // failed verification through, marked here).
  certificateAuthorized: (ctx) => ctx.req.socket.authorized === true,
  certificateSubjectMatches: (ctx, property, expected) => {
    const cert = peerCertificate(ctx);
    if (property === 'tls_client_auth_subject_dn') return rfc4514(cert.subject) === expected;
    throw new Error(`${property} is not supported by this IdP`);
  },
};

// ---- server --------------------------------------------------------------------------------
// Listen first, so that port 0 can be resolved before the issuer (which names it) is fixed.
const tlsOptions = (requestCert) => ({
  cert: tlsCert,
  key: tlsKey,
  ...(tlsCa ? { ca: tlsCa } : {}),
  requestCert,
  rejectUnauthorized: false,
});
const listen = async (server, port) => {
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return server.address().port;
};
const server = mtls ? https.createServer(tlsOptions(!mtlsAlias)) : http.createServer();
const port = await listen(server, Number(setting('IDP_PORT', '0')));
const issuer = setting('IDP_ISSUER', `${mtls ? 'https' : 'http'}://127.0.0.1:${port}`);
const aliasServer = mtlsAlias ? https.createServer(tlsOptions(true)) : undefined;
const mtlsPort = aliasServer ? await listen(aliasServer, 0) : undefined;

const provider = new Provider(issuer, {
  jwks: { keys: published },
  clients: CLIENTS.map(clientMetadata),
  ...(mtls
    ? {
      clientAuthMethods: [
        'client_secret_basic', 'client_secret_post', 'private_key_jwt',
        'tls_client_auth', 'self_signed_tls_client_auth',
      ],
    }
    : {}),
  ...(mtlsPort
    ? {
      discovery: {
        mtls_endpoint_aliases: { token_endpoint: `https://127.0.0.1:${mtlsPort}/token` },
      },
    }
    : {}),
  features: {
    ...(mtls ? { mTLS: mtlsFeature } : {}),
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    jwtIntrospection: { enabled: true },
    revocation: { enabled: true },
    dPoP: {
      enabled: true,
      // Stateless nonces (an HMAC over a time step) under a secret of this run.
      nonceSecret: crypto.randomBytes(32),
      requireNonce: () => dpopNonce,
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? fallbackResource,
      useGrantedResource: async () => false,
      getResourceServerInfo: async (_ctx, resource, client) => {
        if (resources && !resources.has(resource)) throw new errors.InvalidTarget();
        const c = clientById.get(client.clientId);
        const kid = signingKid(c.alg);
        if (!kid) throw new errors.InvalidClient(`no published ${c.alg} key`);
        return {
          audience: resource,
          scope: scopes,
          accessTokenFormat: opaqueResources.has(resource) ? 'opaque' : 'jwt',
          accessTokenTTL: c.ttl,
          jwt: { sign: { alg: c.alg, kid } },
        };
      },
    },
  },
});
provider.on('server_error', (_ctx, err) => console.error('idp server_error:', err));
server.on('request', provider.callback());
aliasServer?.on('request', provider.callback());

const ready = { issuer, port, kids: publishedKids, ...(mtlsPort ? { mtls_port: mtlsPort } : {}) };
console.log(`READY ${JSON.stringify(ready)}`);

const stop = () => {
  aliasServer?.close();
  server.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
