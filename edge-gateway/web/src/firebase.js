// Sign-in with Firebase Authentication (Google as the identity provider), loaded only when the gateway's
// /client-config.json names a Firebase project. Firebase keeps the sign-in (shared by the site's tabs,
// in its own browser storage) and refreshes the ID token before it expires; the control plane verifies
// it (issuer https://securetoken.google.com/<project>, audience <project>). Same interface as auth.js's
// OidcSignIn.

import { initializeApp } from '@firebase/app';
import { GoogleAuthProvider, getAuth, onAuthStateChanged, signInWithPopup, signOut as firebaseSignOut } from '@firebase/auth';
import { claimsOf } from './auth.js';

export class FirebaseSignIn {
  constructor(config, onSignedOut) {
    const app = initializeApp({ apiKey: config.api_key, authDomain: config.auth_domain, projectId: config.project_id });
    this.auth = getAuth(app);
    let known = false;
    onAuthStateChanged(this.auth, (user) => {
      if (known && !user && onSignedOut) onSignedOut();
      known = true;
    });
  }

  /** Waits until Firebase has read its stored sign-in. */
  async restore() {
    await this.auth.authStateReady();
    return {};
  }

  /** The identity with a current ID token (Firebase renews one that is about to expire); null when signed out. */
  async user() {
    const current = this.auth.currentUser;
    if (!current) return null;
    const token = await current.getIdToken();
    return { token, claims: claimsOf(token) };
  }

  /** Opens the provider's sign-in popup. */
  async signIn() {
    await signInWithPopup(this.auth, new GoogleAuthProvider());
  }

  async signOut() {
    await firebaseSignOut(this.auth);
  }
}
