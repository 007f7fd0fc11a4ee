// A real OpenID provider (npm oidc-provider) for gitfaas tests and the local stack.
//
// Issues RS256 JWT access tokens with the client_credentials grant and resource
// indicators: every client is a user (sub = client id). Clients and their roles come
// from --clients (JSON) or the defaults below. The signing key is generated at start;
// --key-out writes the private JWK so that tests can forge tokens with it (expired,
// wrong issuer, wrong audience) and --pem-out the same as PEM (plus .pub);
// --key-in reuses a key. The issuer is http://<host>:<port> unless --issuer=URL names
// another (e.g. its name on a container network while it listens on 0.0.0.0). Prints one
// JSON line {"issuer": ...} when listening; exits when its stdin closes (--stdin-exit).
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => a.replace(/^--/, '').split(/=(.*)/s).slice(0, 2)),
);
const host = args.host ?? '127.0.0.1';
const port = Number(args.port ?? 0);
const audience = args.audience ?? 'urn:gitfaas';
const issuerOverride = args.issuer;
const defaultClients = [
  { id: 'alice', secret: 'alice-secret', roles: ['user'], name: 'Alice' },
  { id: 'bob', secret: 'bob-secret', roles: ['user'], name: 'Bob' },
  { id: 'admin', secret: 'admin-secret', roles: ['user', 'admin'], name: 'Admin' },
];
const clients = args.clients ? JSON.parse(args.clients) : defaultClients;

let jwk;
if (args['key-in']) {
  jwk = JSON.parse(readFileSync(args['key-in'], 'utf8'));
} else {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}
if (args['key-out']) writeFileSync(args['key-out'], JSON.stringify(jwk));
if (args['pem-out']) {
  // PEM forms, for tests that forge tokens: the private key, and the public key
  const key = createPrivateKey({ key: jwk, format: 'jwk' });
  writeFileSync(args['pem-out'], key.export({ format: 'pem', type: 'pkcs8' }));
  writeFileSync(`${args['pem-out']}.pub`, createPublicKey(key).export({ format: 'pem', type: 'spki' }));
}

const byId = new Map(clients.map((c) => [c.id, c]));

function start(issuer, listenPort) {
  const provider = new Provider(issuer, {
    clients: clients.map((c) => ({
      client_id: c.id,
      client_secret: c.secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: 'jobs',
    })),
    jwks: { keys: [jwk] },
    ttl: { ClientCredentials: 3600 },
    scopes: ['jobs'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          if (resource !== audience) throw new Error(`unknown resource ${resource}`);
          return { scope: 'jobs', audience, accessTokenFormat: 'jwt', accessTokenTTL: 3600, jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
    extraTokenClaims: (ctx, token) => {
      const client = byId.get(token.clientId);
      return client ? { roles: client.roles, preferred_username: client.name } : {};
    },
  });
  provider.proxy = true;
  const server = provider.listen(listenPort, host, () => {
    const actual = server.address().port;
    if (listenPort === 0 && issuerOverride === undefined) {
      // the issuer must carry the real port: start again on it with the right issuer
      server.close(() => start(`http://${host}:${actual}`, actual));
      return;
    }
    console.log(JSON.stringify({ issuer, port: actual, kid: jwk.kid }));
  });
}

start(issuerOverride ?? (port === 0 ? `http://${host}:0` : `http://${host}:${port}`), port);
// a bare flag parses to [name] with no value: test for the name, not its value
if (Object.hasOwn(args, 'stdin-exit')) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
