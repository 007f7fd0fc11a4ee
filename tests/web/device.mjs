// A user approving a device login (OAuth 2.0 device authorization grant) through
// Keycloak's real pages in a browser (Debian's chromium through playwright-core): opens the
// verification URL, types the user code, signs in, grants access if asked. The device's side
// (starting the flow, polling the token endpoint) is tests/tests/auth.rs. Environment:
//   GITFAAS_DEVICE_URL        the verification_uri Keycloak returned
//   GITFAAS_DEVICE_USER_CODE  the user_code
//   GITFAAS_DEVICE_USER, GITFAAS_DEVICE_PASSWORD  a user of the realm
// Prints `ok - <step>`; exits non-zero at the first failure.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { grantIfAsked, launchArgs, signIn } from './keycloak.mjs';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const url = env('GITFAAS_DEVICE_URL');
const origin = new URL(url).origin;

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: launchArgs });
try {
  const page = await browser.newPage();
  const requests = [];
  page.on('request', (request) => requests.push(request.url()));
  await page.goto(url);
  await page.fill('#device_user_code', env('GITFAAS_DEVICE_USER_CODE'));
  await page.click('#kc-login');
  console.log('ok - the user code was accepted');
  await signIn(page, env('GITFAAS_DEVICE_USER'), env('GITFAAS_DEVICE_PASSWORD'));
  await grantIfAsked(page);
  await page.waitForLoadState();
  assert.ok(!(await page.locator('#kc-form-login').count()), 'still on the login form');
  assert.deepEqual(requests.filter((r) => !r.startsWith(origin) && !r.startsWith('data:')), [], 'only keycloak');
  console.log(`ok - device login approved: ${(await page.locator('h1').first().textContent()).trim()}`);
} catch (error) {
  console.error(`not ok - ${error.stack || error}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
