// Sign-in with any OpenID Connect provider through `oidc-client-ts`: the authorization-code flow with
// PKCE, the sign-in kept in IndexedDB (shared by the site's tabs), and silent renewal with the
// provider's refresh tokens ahead of the ID token's expiry, so a session outlives every ID token.
//
// Renewal with rotating refresh tokens must run in one tab at a time: a refresh token works once, and a
// provider that sees one used twice revokes the sign-in (the dev issuer does, as the OAuth security BCP
// asks). Each renewal therefore takes a Web Lock shared by the tabs, then rereads the stored sign-in: if
// another tab renewed meanwhile, there is nothing left to do. That reread must see the other tab's
// write, which IndexedDB's transactions guarantee and localStorage does not (Chromium hands a write to
// other tabs' processes later: the browser test caught two tabs spending one refresh token that way).

import { createStore, del, get, keys, set } from 'idb-keyval';
import { ErrorResponse, UserManager } from 'oidc-client-ts';
import { claimsOf, sessionLink } from './auth.js';

/** `oidc-client-ts`'s store of the signed-in user, in IndexedDB (`idb-keyval`). */
class SharedStore {
  constructor() {
    this.db = createStore('edgeshell-signin', 'user');
  }

  set(key, value) {
    return set(key, value, this.db);
  }

  async get(key) {
    return (await get(key, this.db)) ?? null;
  }

  async remove(key) {
    const value = await this.get(key);
    await del(key, this.db);
    return value;
  }

  async getAllKeys() {
    return (await keys(this.db)).map(String);
  }
}

// An ID token with less than this left is renewed before it is sent (the control plane allows a
// minute of clock skew, which is not relied on).
const SEND_MARGIN_MS = 30_000;
const RENEW_LOCK = 'edgeshell.signin.renew';
// After a failed renewal (the provider unreachable), try again this soon while the token still works.
const RETRY_MS = 10_000;

/** When the ID token (and the provider's view of the tokens) stops working, in ms since the epoch. */
function expiresAt(user) {
  const claims = claimsOf(user.id_token || '');
  const idExpiry = claims && typeof claims.exp === 'number' ? claims.exp * 1000 : 0;
  return user.expires_at ? Math.min(idExpiry, user.expires_at * 1000) : idExpiry;
}

/** How long before expiry to renew: a minute, or half the lifetime of shorter-lived tokens. */
function leadMs(user) {
  const claims = claimsOf(user.id_token || '') || {};
  const lifetime = typeof claims.iat === 'number' ? expiresAt(user) - claims.iat * 1000 : 120_000;
  return Math.min(60_000, Math.max(SEND_MARGIN_MS, lifetime / 2));
}

export class OidcSignIn {
  constructor(oidc, onSignedOut) {
    this.manager = new UserManager({
      authority: oidc.issuer,
      client_id: oidc.client_id,
      redirect_uri: `${location.origin}/`,
      response_type: 'code',
      scope: oidc.scope,
      // Shared by the site's tabs: one sign-in for all of them. (The sign-in request's state stays in
      // localStorage, the library's default: only the tab that started it reads it.)
      userStore: new SharedStore(),
      // Renewed here, one tab at a time (see the top of this file).
      automaticSilentRenew: false,
      monitorSession: false,
      loadUserInfo: false,
      revokeTokenTypes: ['refresh_token'],
    });
    this.timer = null;
    this.renewals = 0;
    // Another tab signed out (or its renewal was refused): this one is signed out too.
    this.channel = new BroadcastChannel('edgeshell.signin');
    this.channel.onmessage = (e) => { if (e.data === 'signed-out' && onSignedOut) onSignedOut(); };
    document.addEventListener('visibilitychange', () => { if (!document.hidden) this.user().catch(() => {}); });
  }

  /** Completes a sign-in the provider redirected back from (back at its session link); returns { error } or {}. */
  async restore() {
    const params = new URLSearchParams(location.search);
    if (!params.has('state') || !(params.has('code') || params.has('error'))) return {};
    try {
      const user = await this.manager.signinCallback();
      const returnTo = (user && user.state && user.state.returnTo) || '';
      history.replaceState(null, '', `/${sessionLink(returnTo)}`);
      return {};
    } catch (e) {
      history.replaceState(null, '', '/');
      const why = e instanceof ErrorResponse ? (e.error_description || e.error) : e.message;
      return { error: `Sign-in failed: ${why}` };
    }
  }

  /** The signed-in identity `{ token, claims }` with an ID token good to send, renewed if need be; null when signed out. */
  async user() {
    let user = await this.manager.getUser();
    if (user && expiresAt(user) - Date.now() < leadMs(user)) {
      await this.renew();
      user = await this.manager.getUser(); // renewed, unchanged (the provider unreachable), or removed
    }
    if (!user || expiresAt(user) - Date.now() < SEND_MARGIN_MS) return null;
    if (!this.retrying) this.schedule(user);
    return { token: user.id_token, claims: claimsOf(user.id_token) };
  }

  /** Renews the stored sign-in with its refresh token, once across all tabs; the renewed user, or null. */
  async renew() {
    const run = async () => {
      const current = await this.manager.getUser();
      if (!current) return null;
      if (expiresAt(current) - Date.now() >= leadMs(current)) return current; // another tab renewed it
      if (!current.refresh_token) return null; // the provider gave none: sign in again when it expires
      try {
        const renewed = await this.manager.signinSilent();
        this.renewals += 1;
        return renewed;
      } catch (e) {
        this.lastError = e.message; // for the console and the tests
        // The provider refused (revoked, expired): the sign-in is over, in every tab. Anything else (the
        // provider unreachable) is retried while the token lasts.
        if (e instanceof ErrorResponse) {
          await this.forget();
        } else {
          clearTimeout(this.timer);
          this.retrying = true;
          this.timer = setTimeout(() => { this.retrying = false; this.user().catch(() => {}); }, RETRY_MS);
        }
        return null;
      }
    };
    return navigator.locks ? navigator.locks.request(RENEW_LOCK, run) : run();
  }

  /** Renews ahead of expiry, also when nothing calls the control plane for a while. */
  schedule(user) {
    clearTimeout(this.timer);
    const due = expiresAt(user) - leadMs(user) - Date.now();
    this.timer = setTimeout(() => this.user().catch(() => {}), Math.max(1000, due));
  }

  /** Sends the browser to the provider; a session link being opened comes back after sign-in. */
  async signIn() {
    const returnTo = sessionLink(location.hash);
    await this.manager.signinRedirect({ state: { returnTo } });
  }

  /** Revokes the refresh token at the provider (when it can) and forgets the sign-in in every tab. */
  async signOut() {
    clearTimeout(this.timer);
    await this.manager.revokeTokens().catch(() => {});
    await this.forget();
  }

  async forget() {
    await this.manager.removeUser();
    this.channel.postMessage('signed-out');
  }
}
