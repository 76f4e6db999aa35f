// Sign-in, two ways, chosen by the gateway's /client-config.json, each loaded on demand:
// - any OpenID Connect provider (./oidc.js, `oidc-client-ts`): the authorization-code flow with PKCE,
//   then silent renewal with the provider's refresh tokens, so a session outlives every ID token;
// - Firebase Authentication (./firebase.js), which keeps and renews its own sign-in.
// Either way the sign-in is shared by every tab of the site (IndexedDB; Firebase's own store), so a
// new tab or a session link needs no second sign-in, and the control plane verifies the ID token's
// signature, issuer, audience and expiry on every call. Both have one interface: restore() (finish a
// sign-in the provider redirected back from), user() (`{ token, claims }` with a token good to send, or
// null), signIn() and signOut().

/** The claims of a JWT, unverified (for display and expiry only). */
export function claimsOf(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(decodeURIComponent(escape(atob(payload))));
  } catch {
    return null;
  }
}

/** A display name for an identity `{ token, claims }`. */
export function displayName(user) {
  const c = user.claims;
  return c.name || c.email || c.preferred_username || c.sub;
}

/** A session link (`#/s/<id>`), kept through a sign-in; empty for anything else. */
export function sessionLink(hash) {
  return /^#\/s\/[A-Za-z0-9_-]+$/.test(hash) ? hash : '';
}

/** The sign-in the config names; `onSignedOut` runs when it ends elsewhere (another tab, the provider). */
export async function createSignIn(config, onSignedOut) {
  if (config.firebase) {
    const firebase = await import('./firebase.js');
    return new firebase.FirebaseSignIn(config.firebase, onSignedOut);
  }
  const oidc = await import('./oidc.js');
  return new oidc.OidcSignIn(config.oidc, onSignedOut);
}

