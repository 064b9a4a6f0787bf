// A real OpenID provider (the certified oidc-provider package) on loopback, for the signaler's
// OIDC tests. Usage: node provider.mjs PORT [PORT...] — one provider (issuer, signing key) per
// port, each with the clients "weron", "weron-short" (ID tokens live 1 s) and "other".
// Tokens are obtained through the provider's own login and consent pages (dev interactions).
// Prints one JSON line {"issuers": [...]} once every provider listens; stops on SIGTERM.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const REDIRECT_URI = 'http://127.0.0.1/callback';

function start(port) {
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };
  const clients = ['weron', 'weron-short', 'other'].map((clientId) => ({
    client_id: clientId,
    client_secret: `secret-${clientId}`,
    redirect_uris: [REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }));
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [signingKey] },
    findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      Grant: 600,
      IdToken: (ctx, token, client) => (client.clientId === 'weron-short' ? 1 : 600),
      Interaction: 600,
      Session: 600,
    },
    features: { devInteractions: { enabled: true } },
  });
  return new Promise((resolve) => {
    const server = provider.listen(port, '127.0.0.1', () => resolve({ issuer, server }));
  });
}

const started = await Promise.all(process.argv.slice(2).map((port) => start(Number(port))));
process.stdout.write(`${JSON.stringify({ issuers: started.map((p) => p.issuer) })}\n`);
process.on('SIGTERM', () => {
  for (const { server } of started) server.close();
  process.exit(0);
});
