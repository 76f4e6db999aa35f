// Sign-in with Firebase Authentication (Google as the identity provider), loaded only when the gateway's
// /client-config.json names a Firebase project. Firebase keeps the session and refreshes the ID token
// before it expires; every new token is handed to `onToken`, and the control plane verifies it
// (issuer https://securetoken.google.com/<project>, audience <project>).

import { initializeApp } from '@firebase/app';
import { GoogleAuthProvider, getAuth, onIdTokenChanged, signInWithPopup, signOut as firebaseSignOut } from '@firebase/auth';

let auth = null;

function authFor(config) {
  if (!auth) {
    const app = initializeApp({ apiKey: config.api_key, authDomain: config.auth_domain, projectId: config.project_id });
    auth = getAuth(app);
  }
  return auth;
}

/** Opens the provider's sign-in popup; resolves with the ID token. */
export async function signIn(config) {
  const credential = await signInWithPopup(authFor(config), new GoogleAuthProvider());
  return credential.user.getIdToken();
}

/** Calls `onToken` with every new ID token (null when signed out), including Firebase's refreshes. */
export function watch(config, onToken) {
  onIdTokenChanged(authFor(config), async (user) => onToken(user ? await user.getIdToken() : null));
}

export async function signOut(config) {
  await firebaseSignOut(authFor(config));
}
