// A real OpenID Connect provider for the test run (npm oidc-provider, version pinned in
// scripts/lib/oidc-provider.sh). Plain HTTP on loopback; the one client below, the users below, the
// authorization-code and implicit (id_token) grants. Logins go through the package's own
// development interaction pages (login form, then consent form), which the tests drive headlessly
// (tests/support/oidc.rs). Usage: node provider.mjs PORT NODE_MODULES_DIR (the package lives under
// target/tools, outside this tree, and ES modules do not search NODE_PATH).
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const port = Number(process.argv[2]);
const modules = process.argv[3];
if (!Number.isInteger(port) || port <= 0 || !modules) {
  console.error('usage: node provider.mjs PORT NODE_MODULES_DIR');
  process.exit(2);
}
const { default: Provider } = await import(pathToFileURL(join(modules, 'oidc-provider/lib/index.js')).href);
const issuer = `http://127.0.0.1:${port}`;

// Users: the login name is the account id; the development login form accepts any password.
const users = {
  ann: { email: 'ann@example.com', email_verified: true },
  bob: { email: 'bob@example.com', email_verified: true },
  eve: { email: 'eve@unknown.example', email_verified: true },
};

// A fresh signing key per run, with a kid, so the server under test has to fetch the JWKS.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' };

const configuration = {
  clients: [
    {
      client_id: 'license-server-test',
      client_secret: 'license-server-test-secret',
      // Web redirect URIs with implicit must be https; the headless login never follows the redirect,
      // it reads the Location header, so the host need not exist.
      redirect_uris: ['https://app.example.test/callback', 'https://app.example.test/other'],
      response_types: ['code', 'id_token'],
      grant_types: ['authorization_code', 'implicit'],
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  responseTypes: ['code', 'id_token'],
  scopes: ['openid', 'email'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  // The email goes in the id_token in the code flow too (the server reads only the id_token).
  conformIdTokenClaims: false,
  jwks: { keys: [signingKey] },
  cookies: { keys: ['license-server-test-cookie-key'] },
  pkce: { required: () => false },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    const user = users[id];
    if (!user) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...user }; } };
  },
};

const provider = new Provider(issuer, configuration);
provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
