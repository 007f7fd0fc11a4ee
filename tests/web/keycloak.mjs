// Keycloak's real login pages, as a user goes through them in the browser: shared by
// webapp.mjs (authorization code + PKCE) and device.mjs (device authorization grant).
// The element ids are those of Keycloak's login theme (keycloak.v2).

// signIn(page, user, password): the page shows Keycloak's login form; submits it.
export async function signIn(page, user, password) {
  await page.locator('#kc-form-login').waitFor();
  await page.fill('#username', user);
  await page.fill('#password', password);
  await page.click('#kc-login');
}

// grantIfAsked(page): accepts the consent screen when Keycloak shows one.
export async function grantIfAsked(page) {
  await page.waitForLoadState();
  const consent = page.locator('#kc-oauth');
  if (await consent.count()) await page.click('#kc-login');
}

export const launchArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];
