// Sign-in, two ways, chosen by the gateway's /client-config.json:
// - any OpenID Connect provider's implicit flow (response_type=id_token): the page sends the person to the
//   provider, which returns an ID token in the URL fragment, checked here for state and nonce;
// - Firebase Authentication (`firebase` in the config), loaded on demand from ./firebase.js.
// Either way the ID token is kept in sessionStorage (this tab only); the control plane verifies its
// signature, issuer and audience on every call.

const KEY = 'edgeshell.id_token';
const PENDING = 'edgeshell.signin';

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function claimsOf(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(decodeURIComponent(escape(atob(payload))));
  } catch {
    return null;
  }
}

/** The signed-in identity: { token, claims } or null when signed out or expired. */
export function currentUser() {
  const token = sessionStorage.getItem(KEY);
  if (!token) return null;
  const claims = claimsOf(token);
  if (!claims || typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now() + 30_000) {
    sessionStorage.removeItem(KEY);
    return null;
  }
  return { token, claims };
}

/** A display name for the identity. */
export function displayName(user) {
  const c = user.claims;
  return c.name || c.email || c.preferred_username || c.sub;
}

/** Signs in with whatever the config names; resolves when signed in (Firebase) or never (a redirect). */
export async function signIn(config) {
  if (config.firebase) {
    const firebase = await import('./firebase.js');
    sessionStorage.setItem(KEY, await firebase.signIn(config.firebase));
    return;
  }
  redirectToProvider(config.oidc);
}

/** With Firebase, keeps the stored ID token current as Firebase refreshes it. */
export async function watchTokens(config) {
  if (!config.firebase) return;
  const firebase = await import('./firebase.js');
  firebase.watch(config.firebase, (token) => {
    if (token) sessionStorage.setItem(KEY, token);
    else sessionStorage.removeItem(KEY);
  });
}

/** Sends the browser to the OIDC provider. */
function redirectToProvider(oidc) {
  const state = randomId();
  const nonce = randomId();
  sessionStorage.setItem(PENDING, JSON.stringify({ state, nonce }));
  const url = new URL(oidc.authorize_url);
  url.searchParams.set('response_type', 'id_token');
  url.searchParams.set('client_id', oidc.client_id);
  url.searchParams.set('redirect_uri', `${location.origin}/`);
  url.searchParams.set('scope', oidc.scope);
  url.searchParams.set('state', state);
  url.searchParams.set('nonce', nonce);
  location.assign(url.toString());
}

/** Takes the ID token from the URL fragment after the provider's redirect; returns an error text or null. */
export function completeSignIn() {
  if (!location.hash.includes('id_token=') && !location.hash.includes('error=')) return null;
  const params = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, '', location.pathname + location.search);
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null');
  sessionStorage.removeItem(PENDING);
  if (params.get('error')) return `Sign-in failed: ${params.get('error_description') || params.get('error')}`;
  if (!pending || params.get('state') !== pending.state) return 'Sign-in failed: the answer does not match this tab.';
  const token = params.get('id_token');
  const claims = claimsOf(token || '');
  if (!claims || claims.nonce !== pending.nonce) return 'Sign-in failed: the ID token does not match this sign-in.';
  sessionStorage.setItem(KEY, token);
  return null;
}

export function signOut(config) {
  sessionStorage.removeItem(KEY);
  if (config && config.firebase) import('./firebase.js').then((firebase) => firebase.signOut(config.firebase));
}
