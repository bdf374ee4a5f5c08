// Server-rendered pages of the demo: one layout, escaped text, no inline script or style (the
// pages are served with a strict CSP).

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]);

/** A full page in the shop's layout. `body` is trusted HTML; `scripts` are module URLs. */
export function page({ title, body, scripts = [] }) {
  const tags = scripts.map((s) => `<script type="module" src="${escapeHtml(s)}"></script>`).join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Tidewater Goods</title>
<link rel="stylesheet" href="/css/shop.css">
<link rel="icon" href="/img/logo.svg" type="image/svg+xml">
${tags}
</head>
<body>
<header class="site"><a class="logo" href="/"><img src="/img/logo.svg" alt="" width="28" height="28"> Tidewater Goods</a>
<nav><a href="/">Shop</a> <a href="/checkout" id="nav-cart">Cart</a> <a href="/console">Operator console</a></nav></header>
<main>${body}</main>
<footer class="site">A demo of fieldseal: card data is sealed in your browser and never reaches this shop in the clear. Use test card numbers only.</footer>
</body>
</html>`;
}
