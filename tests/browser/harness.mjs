// Test harness for the browser tests: a static HTTP server on 127.0.0.1 that serves the built
// package (dist/) at /fieldseal/, the test pages, a key set at /v1/keys, records every request
// with its body, and collects CSP violation reports; and Debian's Chromium driven by
// playwright-core.
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../../', import.meta.url));
const vectors = JSON.parse(readFileSync(join(root, 'tests/vectors/envelope-v1.json'), 'utf8'));

/** The key set the pages load: the first test key of the envelope vectors. */
export const keySet = () => ({ keys: [vectors.keys[0].jwk], server_time: Math.floor(Date.now() / 1000) });
/** A key set a proxy substitutes: the vectors' second test key. */
const substituteKeySet = () => ({ keys: [vectors.keys[1].jwk], server_time: Math.floor(Date.now() / 1000) });

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.css': 'text/css',
};

export const STRICT_CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; object-src 'none'; base-uri 'none'; report-uri /csp-report";

/**
 * Starts the server. `mounts` maps URL prefixes to directories (default: /fieldseal/ -> dist/,
 * / -> tests/browser/pages/). Returns { url, requests, cspReports, close }.
 */
export async function startServer(mounts = {}) {
  const table = {
    '/fieldseal/': join(root, 'dist'),
    '/': join(root, 'tests/browser/pages'),
    ...mounts,
  };
  const prefixes = Object.keys(table).sort((a, b) => b.length - a.length);
  const requests = [];
  const cspReports = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url, 'http://127.0.0.1');
      requests.push({ method: req.method, path: url.pathname, search: url.search, body, headers: req.headers });
      if (url.pathname === '/csp-report') {
        cspReports.push(body);
        res.writeHead(204).end();
        return;
      }
      // The key set; /v1/keys-slow answers after 3 s, /v1/keys-down with 503, /v1/keys-reset
      // drops the connection (a network error), /v1/keys-substituted serves another key (a proxy's).
      if (url.pathname.startsWith('/v1/keys')) {
        const answer = () => {
          res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
          res.end(JSON.stringify(url.pathname === '/v1/keys-substituted' ? substituteKeySet() : keySet()));
        };
        if (url.pathname === '/v1/keys-slow') setTimeout(answer, 3000);
        else if (url.pathname === '/v1/keys-down') res.writeHead(503).end('{"error":"unavailable"}');
        else if (url.pathname === '/v1/keys-reset') req.socket.destroy();
        else answer();
        return;
      }
      if (req.method === 'POST') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end('<!doctype html><title>received</title><p id="received">received</p>');
        return;
      }
      const prefix = prefixes.find((p) => url.pathname.startsWith(p));
      let file = normalize(join(table[prefix], decodeURIComponent(url.pathname.slice(prefix.length))));
      if (!file.startsWith(table[prefix])) {
        res.writeHead(403).end();
        return;
      }
      try {
        if (statSync(file).isDirectory()) file = join(file, 'index.html');
        const data = readFileSync(file);
        const headers = { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' };
        if (url.searchParams.has('csp') || file.includes('csp')) headers['content-security-policy'] = STRICT_CSP;
        res.writeHead(200, headers);
        res.end(data);
      } catch {
        res.writeHead(404).end('not found');
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    cspReports,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Launches Debian's Chromium (never a downloaded browser) headless with a fresh profile. */
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'fieldseal-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    context,
    newPage: async () => {
      const page = await context.newPage();
      page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
      return page;
    },
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Test card numbers and values that must never appear in a request. */
export const SECRETS = {
  pan: '4111111111111111',
  panSpaced: '4111 1111 1111 1111',
  cvc: '737',
  email: 'jane.doe@example.com',
};

/**
 * Whether `text` (a request body or URL) contains any plaintext secret, in any common encoding,
 * outside the envelopes: their base64url ciphertext holds any short digit run (a CVC) by chance.
 */
export function leaks(text, values = Object.values(SECRETS)) {
  const outside = text.replace(/fse1\.[A-Za-z0-9_-]+/g, ' ');
  const forms = (v) => [...new Set([v, encodeURIComponent(v), v.replace(/ /g, '+'), v.replace(/\s/g, '')])];
  return values.flatMap(forms).filter((f) => f.length >= 3 && outside.includes(f));
}

/**
 * Opens `url` in a new page (running `init` before the page's scripts) and waits for the `ready`
 * selector: by default, until its fieldseal script is ready or failed to load.
 */
export async function openPage(browser, url, { init, ready = 'body[data-ready]' } = {}) {
  const page = await browser.newPage();
  if (init) await page.addInitScript(init);
  const sent = [];
  page.on('request', (r) => sent.push({ url: r.url(), body: r.postData() ?? '' }));
  await page.goto(url);
  await page.waitForSelector(ready, { timeout: 15_000 }).catch(() => {});
  return { page, sent };
}

/** The POST requests the server received for `path`. */
export const postsTo = (server, path = '/pay') => server.requests.filter((r) => r.method === 'POST' && r.path === path);

/** Fills the checkout test page's fields with valid values. */
export async function fillValid(page, { card = SECRETS.panSpaced } = {}) {
  await page.locator('#card').pressSequentially(card.replace(/ /g, ''));
  await page.fill('#exp', '12 / 30');
  await page.fill('#cvc', SECRETS.cvc);
  await page.fill('#holder', 'Jane Doe');
  await page.fill('#email', SECRETS.email);
}

/** Clicks #pay and returns the form fields the server received. */
export async function submitForm(server, page) {
  const before = postsTo(server).length;
  await Promise.all([page.waitForURL('**/pay', { timeout: 10_000 }), page.click('#pay')]);
  const got = postsTo(server);
  assert.equal(got.length, before + 1, 'one POST /pay');
  return { raw: got.at(-1).body, fields: Object.fromEntries(new URLSearchParams(got.at(-1).body)) };
}

/**
 * A fresh app directory target/<name> holding the files of `source` and the built package
 * installed as a dependency would be (node_modules/fieldseal: package.json and dist/). Returns its
 * path.
 */
export function appWithPackage(name, source) {
  const app = join(root, 'target', name);
  rmSync(app, { recursive: true, force: true });
  mkdirSync(join(app, 'node_modules/fieldseal'), { recursive: true });
  cpSync(join(root, 'package.json'), join(app, 'node_modules/fieldseal/package.json'));
  cpSync(join(root, 'dist'), join(app, 'node_modules/fieldseal/dist'), { recursive: true });
  cpSync(join(root, source), app, { recursive: true });
  return app;
}

/**
 * For a test file: starts the server (with `mounts`) and Chromium before its tests and stops them
 * after. Returns an object whose `server` and `browser` are set once started.
 */
export function withBrowser(mounts) {
  const env = { server: null, browser: null };
  before(async () => {
    env.server = await startServer(mounts);
    env.browser = await launchChromium();
  });
  after(async () => {
    await env.browser?.close();
    await env.server?.close();
  });
  return env;
}
