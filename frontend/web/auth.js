// Browser sign-in: the OAuth 2.0 authorization code flow with PKCE (S256) against
// the configured OpenID provider, as a public client. The verifier and state wait
// in session storage while the provider has the page; the access token that comes
// back is stored by the caller, in session storage too.

const PENDING_KEY = 'gitfaas.pkce';

function base64url(bytes) {
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(numBytes) {
  return base64url(crypto.getRandomValues(new Uint8Array(numBytes)));
}

async function challengeOf(verifier) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

async function discover(issuer) {
  const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  let response;
  try {
    response = await fetch(url, { cache: 'no-store' });
  } catch (error) {
    throw new Error(`cannot reach the identity provider at ${issuer}: ${error.message || error}`);
  }
  if (!response.ok) throw new Error(`the identity provider's discovery answered ${response.status}`);
  const metadata = await response.json();
  if (!metadata.authorization_endpoint || !metadata.token_endpoint) {
    throw new Error('the identity provider does not offer the authorization code flow');
  }
  return metadata;
}

function redirectUri() {
  return `${location.origin}/`;
}

// Leaves for the provider's login page.
export async function beginSignIn(config) {
  if (!crypto.subtle) {
    throw new Error('signing in here needs https (or localhost); paste an access token instead');
  }
  const metadata = await discover(config.issuer);
  const verifier = randomString(32);
  const state = randomString(16);
  sessionStorage.setItem(
    PENDING_KEY,
    JSON.stringify({ verifier, state, tokenEndpoint: metadata.token_endpoint, redirectUri: redirectUri() }),
  );
  const url = new URL(metadata.authorization_endpoint);
  const params = {
    response_type: 'code',
    client_id: config.client_id,
    redirect_uri: redirectUri(),
    scope: config.scopes,
    state,
    code_challenge: await challengeOf(verifier),
    code_challenge_method: 'S256',
  };
  if (config.resource) params.resource = config.resource;
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  location.assign(url.toString());
}

// True when the page was opened by the provider's redirect back.
export function isSignInRedirect() {
  const params = new URLSearchParams(location.search);
  return params.has('state') && (params.has('code') || params.has('error'));
}

// Finishes a sign-in the provider redirected back from; resolves to the access token.
export async function completeSignIn(config) {
  const params = new URLSearchParams(location.search);
  history.replaceState(null, '', location.pathname);
  const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || 'null');
  sessionStorage.removeItem(PENDING_KEY);
  if (params.has('error')) {
    throw new Error(`sign-in refused: ${params.get('error_description') || params.get('error')}`);
  }
  if (!pending || pending.state !== params.get('state')) {
    throw new Error('sign-in answer does not match a sign-in started in this tab; try again');
  }
  const form = new URLSearchParams({
    grant_type: 'authorization_code',
    code: params.get('code'),
    redirect_uri: pending.redirectUri,
    client_id: config.client_id,
    code_verifier: pending.verifier,
  });
  if (config.resource) form.set('resource', config.resource);
  let response;
  try {
    response = await fetch(pending.tokenEndpoint, { method: 'POST', body: form, cache: 'no-store' });
  } catch (error) {
    throw new Error(`cannot reach the token endpoint: ${error.message || error}`);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok || !body.access_token) {
    throw new Error(`the token request failed: ${body.error_description || body.error || response.status}`);
  }
  return body.access_token;
}
