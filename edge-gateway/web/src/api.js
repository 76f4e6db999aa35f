// The control plane's public API, reached through the gateway's own origin (/api/...). Every failure
// becomes an ApiError carrying the control plane's stable code and message.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export async function call(method, path, idToken, body) {
  const headers = { accept: 'application/json' };
  if (idToken) headers.authorization = `Bearer ${idToken}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'network', `The service cannot be reached (${e.message}).`);
  }
  if (!response.ok) throw await errorOf(response);
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError(response.status, 'http_' + response.status, 'The service answered something that is not JSON.');
  }
}

/** The ApiError of a failed response: the control plane's (or the gateway's) code and message. */
export async function errorOf(response) {
  const text = await response.text();
  let err = null;
  try {
    err = text ? JSON.parse(text).error : null;
  } catch {
    // Not JSON: reported with the status.
  }
  const retry = Number(response.headers.get('retry-after')) || undefined;
  return new ApiError(response.status, err ? err.code : 'http_' + response.status,
    err ? err.message : `The service answered ${response.status}.`, retry);
}

export const api = {
  errorOf,
  config: () => call('GET', '/client-config.json'),
  regions: () => call('GET', '/api/regions'),
  templates: (idToken) => call('GET', '/api/templates', idToken),
  startSession: (idToken, options) => call('POST', '/api/sessions', idToken, options),
  sessions: (idToken) => call('GET', '/api/sessions', idToken),
  session: (idToken, id) => call('GET', `/api/sessions/${encodeURIComponent(id)}`, idToken),
  extend: (idToken, id, bySecs) => call('POST', `/api/sessions/${encodeURIComponent(id)}/extend`, idToken, { by_secs: bySecs }),
  attachToken: (idToken, id) => call('POST', `/api/sessions/${encodeURIComponent(id)}/token`, idToken, {}),
  endSession: (idToken, id) => call('DELETE', `/api/sessions/${encodeURIComponent(id)}`, idToken),
  secrets: (idToken) => call('GET', '/api/secrets', idToken),
  setSecret: (idToken, name, value) => call('PUT', `/api/secrets/${encodeURIComponent(name)}`, idToken, { value }),
  deleteSecret: (idToken, name) => call('DELETE', `/api/secrets/${encodeURIComponent(name)}`, idToken),
  artifacts: (idToken, id) => call('GET', `/api/artifacts?session=${encodeURIComponent(id)}`, idToken),
  artifactLink: (idToken, id, path) => call('POST', '/api/artifacts/links', idToken, { session_id: id, path }),
};
