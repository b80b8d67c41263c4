// A real OpenID Connect provider for Accord's single sign-on tests: node-oidc-provider
// (an OpenID Certified implementation) with test users, test clients and short token
// lifetimes. It listens on 127.0.0.1 on a free port and prints "ready <issuer>" once it
// serves. Configuration is one JSON document in the environment variable
// ACCORD_TEST_OIDC_CONFIG:
//
//   {"users": {"alice": {"password": "...", "groups": ["data-team"], "email": "..."}},
//    "clients": [{"client_id": "...", "client_secret": "...", "redirect_uris": [...],
//                 "post_logout_redirect_uris": [...], "grant_types": [...],
//                 "groups": [...]}],          // groups of a client_credentials identity
//    "resources": {"accord-api": {"accessTokenTTL": 60}},   // JWT access token audiences
//    "accessTokenTTL": 60, "sessionTTL": 600}
//
// The login form is the provider's own development interaction, with a password check
// added in front of it. POST /__test/rotate makes a new signing key (the old one is still
// published, as a provider does during a key rotation) so clients must refetch the JWKS.
import { generateKeyPairSync, randomUUID } from "node:crypto";
import http from "node:http";
import Provider from "oidc-provider";

const config = JSON.parse(process.env.ACCORD_TEST_OIDC_CONFIG || "{}");
const users = config.users || {};
const clients = config.clients || [];
const resources = config.resources || {};

function newKey() {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { ...privateKey.export({ format: "jwk" }), kid: randomUUID(), alg: "RS256", use: "sig" };
}

let keys = [newKey()];
let issuer = "";
let current = null;

function build() {
  const provider = new Provider(issuer, {
    clients: clients.map(({ groups, ...c }) => c),
    jwks: { keys },
    pkce: { required: () => true },
    claims: {
      openid: ["sub"],
      email: ["email"],
      profile: ["name", "preferred_username"],
      groups: ["groups"],
    },
    scopes: ["openid", "offline_access", "email", "profile", "groups"],
    // Claims in the ID token itself (the access token is for Accord's API, not userinfo).
    conformIdTokenClaims: false,
    async findAccount(_ctx, id) {
      const user = users[id];
      if (!user) return undefined;
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            email: user.email || `${id}@example.test`,
            name: user.name || id,
            preferred_username: id,
            groups: user.groups || [],
          };
        },
      };
    },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => Object.keys(resources)[0],
        useGrantedResource: () => true,
        getResourceServerInfo(_ctx, indicator) {
          const rs = resources[indicator];
          if (!rs) throw new Error(`unknown resource ${indicator}`);
          return {
            scope: "openid profile email groups",
            audience: indicator,
            accessTokenFormat: "jwt",
            accessTokenTTL: rs.accessTokenTTL || config.accessTokenTTL || 60,
          };
        },
      },
    },
    async extraTokenClaims(_ctx, token) {
      // Groups travel in the JWT access token, for a person or a client_credentials client.
      if (token.accountId && users[token.accountId]) {
        return { groups: users[token.accountId].groups || [] };
      }
      const client = clients.find((c) => c.client_id === token.clientId);
      return client && client.groups ? { groups: client.groups } : undefined;
    },
    ttl: {
      AccessToken: config.accessTokenTTL || 60,
      ClientCredentials: config.accessTokenTTL || 60,
      IdToken: 600,
      Session: config.sessionTTL || 600,
      Interaction: 600,
      Grant: 600,
      AuthorizationCode: 60,
    },
  });
  // The development login form accepts any password; check the test users' passwords.
  provider.use(async (ctx, next) => {
    if (ctx.method === "POST" && /^\/interaction\/[^/]+(\/login)?$/.test(ctx.path)) {
      const body = await readForm(ctx.req);
      const user = users[body.get("login")];
      if (body.get("prompt") === "login" && (!user || user.password !== body.get("password"))) {
        ctx.status = 403;
        ctx.type = "html";
        ctx.body = "<!doctype html><title>Sign-in failed</title><p>Wrong login or password.</p>";
        return;
      }
      // The provider reads an already parsed body from req.body.
      ctx.req.body = Object.fromEntries(body);
    }
    await next();
  });
  return provider;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString());
}

const server = http.createServer((req, res) => {
  if (req.method === "POST" && req.url === "/__test/rotate") {
    keys = [newKey(), ...keys];
    current = build();
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ kid: keys[0].kid }));
    return;
  }
  current.callback()(req, res);
});

server.listen(0, "127.0.0.1", () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  current = build();
  process.stdout.write(`ready ${issuer}\n`);
});

for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => server.close(() => process.exit(0)));
