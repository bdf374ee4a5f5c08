// The demo's web server on 127.0.0.1: the shop's pages (www/), the `fieldseal` package (dist/) at
// /fieldseal/, the vault's key set at /v1/keys (fetched from the vault, so pages load it from their
// own origin), the merchant back end (POST /checkout, receipts at /orders/{id}) and the operator
// console's API. Every response carries a strict CSP and the other usual security headers; CSP
// violation reports are collected.
import { readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from 'fieldseal';
import { PRODUCTS } from './catalog.mjs';
import { consoleApi } from './console.mjs';
import { escapeHtml, page } from './html.mjs';
import { Orders, Refusal, checkout, receiptPage, refusalPage } from './merchant.mjs';

export const root = fileURLToPath(new URL('../', import.meta.url));

export const CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  'report-uri /csp-report',
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
};

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
};

/** Pages whose body is a fragment in www/pages/, wrapped in the shop's layout. */
const PAGES = {
  '/': { title: 'Shop', file: 'index.html', scripts: ['/js/shop.js'] },
  '/checkout': { title: 'Checkout', file: 'checkout.html', scripts: ['/js/checkout.js'] },
  '/console': { title: 'Operator console', file: 'console.html', scripts: ['/js/console.js'] },
  // The card fields are the vault's frames: the page's CSP lets the vault's origin (only) be framed.
  '/checkout/hosted': { title: 'Checkout (hosted fields)', file: 'checkout-hosted.html', scripts: ['/js/checkout-hosted.js'], frames: true },
};

const MAX_BODY = 64 * 1024;
const MAX_CSP_REPORTS = 100;
/** How long the posted envelopes wait in memory for the receipt's first view. */
const RECEIPT_ENVELOPES_MS = 10 * 60 * 1000;

/**
 * Starts the demo server. `vaultUrl` is the running vault, `keys` the demo API keys by role
 * (`checkout` is the merchant's, `auditor` reads the audit trail for the console), `operators`
 * the demo's operators by role (the console shows their roles in the audit trail).
 * Returns { url, cspReports, close() }.
 */
export async function startShop({ vaultUrl, keys, operators = {}, dataDir, port = 0, log = () => {} }) {
  const orders = new Orders(dataDir);
  // The vault serves the hosted field frames from its own origin (another port: another origin).
  const vaultOrigin = new URL(vaultUrl).origin;
  const consoleHandler = consoleApi({ vaultUrl, keys, operators, orders });
  // The fieldseal package in Node, for its stray-card-number check on order notes.
  const keySet = await (await fetch(`${vaultUrl}/v1/keys`)).text();
  const sealer = await load({ keys: keySet, wasm: readFileSync(join(root, 'dist', 'wasm', 'fieldseal_bg.wasm')), poolSize: 0 });
  // Envelopes just posted, by order id, until the receipt is first shown; never written down.
  const posted = new Map();
  const cspReports = [];
  const mounts = [
    ['/fieldseal/', join(root, 'dist')],
    ['/', join(root, 'www')],
  ];

  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const send = (status, body, type = 'text/html; charset=utf-8', extra = {}) => {
      res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'cache-control': 'no-store', ...extra });
      res.end(body);
    };
    const json = (status, value) => send(status, JSON.stringify(value), 'application/json');
    const path = url.pathname;
    const api = path.startsWith('/console/api/');
    try {
      const body = req.method === 'POST' ? await readBody(req) : null;
      if (body === undefined) {
        res.setHeader('connection', 'close');
        return api ? json(413, { error: { code: 'payload_too_large', message: 'request too large' } }) : send(413, 'request too large', 'text/plain');
      }

      if (req.method === 'POST' && path === '/csp-report') {
        if (!/^application\/(csp-report|reports\+json)/.test(req.headers['content-type'] ?? '')) return send(415, '', 'text/plain');
        if (cspReports.length < MAX_CSP_REPORTS) cspReports.push(body);
        log(`CSP violation reported: ${body.slice(0, 300).replace(/[^\x20-\x7e]/g, '?')}`);
        return send(204, '');
      }
      if (req.method === 'GET' && PAGES[path]) {
        const p = PAGES[path];
        // `<!-- include _part.html -->` lines take in the parts both checkouts share.
        const fragment = readFileSync(join(root, 'www', 'pages', p.file), 'utf8')
          .replace(/^ *<!-- include (_[\w-]+\.html) -->\n/gm, (_, part) => readFileSync(join(root, 'www', 'pages', part), 'utf8'))
          .replaceAll('{{vault}}', escapeHtml(vaultOrigin));
        // The hosted checkout runs no wasm of its own: no 'wasm-unsafe-eval' there.
        const extra = p.frames ? { 'content-security-policy': CSP.replace("default-src 'self'", `default-src 'self'; frame-src ${vaultOrigin}`).replace(" 'wasm-unsafe-eval'", '') } : {};
        return send(200, page({ title: p.title, body: fragment, scripts: p.scripts }), undefined, extra);
      }
      if (req.method === 'GET' && path === '/api/products') return json(200, { products: PRODUCTS });
      if (req.method === 'GET' && path === '/v1/keys') {
        const r = await fetch(`${vaultUrl}/v1/keys`);
        return send(r.status, await r.text(), 'application/json', { 'cache-control': 'no-cache' });
      }
      if (req.method === 'POST' && (path === '/checkout' || path === '/checkout/hosted')) {
        if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
          return send(415, 'expected a form post', 'text/plain');
        }
        try {
          const { order, envelopes } = await checkout(new URLSearchParams(body), { vaultUrl, apiKey: keys.checkout, orders, sealer, sealContact: path === '/checkout/hosted' });
          posted.set(order.id, envelopes);
          setTimeout(() => posted.delete(order.id), RECEIPT_ENVELOPES_MS).unref();
          log(`order ${order.id}: ${order.lines.length} lines, ${order.card.brand} ending ${order.card.last4}`);
          res.writeHead(303, { ...SECURITY_HEADERS, location: `/orders/${order.id}`, 'cache-control': 'no-store' });
          return res.end();
        } catch (e) {
          if (!(e instanceof Refusal)) throw e;
          log(`checkout refused: ${e.message}`);
          return send(e.status, refusalPage(e));
        }
      }
      const receipt = /^\/orders\/(ord_[0-9a-f]{16})$/.exec(path);
      if (req.method === 'GET' && receipt) {
        const order = orders.get(receipt[1]);
        if (!order) return send(404, page({ title: 'Not found', body: '<h1>No such order</h1>' }));
        const envelopes = posted.get(order.id);
        posted.delete(order.id);
        return send(200, receiptPage(order, envelopes));
      }
      if (api) {
        if (req.method === 'POST' && !(req.headers['content-type'] ?? '').startsWith('application/json')) {
          return json(415, { error: { code: 'unsupported_media_type', message: 'expected application/json' } });
        }
        const r = await consoleHandler(req, path, () => {
          try {
            return JSON.parse(body);
          } catch {
            return null;
          }
        });
        return json(r.status, r.body);
      }
      if (req.method === 'GET' || req.method === 'HEAD') {
        const file = staticFile(mounts, path);
        if (file) return send(200, readFileSync(file), TYPES[extname(file)] ?? 'application/octet-stream');
      }
      return send(404, page({ title: 'Not found', body: '<h1>Not found</h1>' }));
    } catch (e) {
      log(`error: ${e.message}`);
      if (res.headersSent) res.end();
      else if (api) json(502, { error: { code: 'bad_gateway', message: 'the console could not reach the vault; try again' } });
      else send(502, page({ title: 'Unavailable', body: '<h1>Something went wrong</h1><p>The shop could not reach the vault. Try again.</p>' }));
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cspReports,
    close: () => new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections();
    }),
  };
}

/** The body as text; undefined when it exceeds MAX_BODY (the rest is not read). */
function readBody(req) {
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        req.pause();
        resolve(undefined);
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** The file a GET path names under one of the mounts, or null (never outside them). */
function staticFile(mounts, path) {
  for (const [prefix, dir] of mounts) {
    if (!path.startsWith(prefix)) continue;
    let rel;
    try {
      rel = decodeURIComponent(path.slice(prefix.length));
    } catch {
      return null;
    }
    const file = normalize(join(dir, rel));
    const inside = relative(dir, file);
    if (!file.startsWith(dir + sep) || (prefix === '/' && inside.split(sep)[0] === 'pages')) return null;
    try {
      if (statSync(file).isFile()) return file;
    } catch {
      // not there
    }
    return null;
  }
  return null;
}
