// The demo shop's products. Prices in cents; the server computes every total from this list, never
// from what the page sends.
export const PRODUCTS = [
  { sku: 'mug', name: 'Enamel camp mug', price: 1800, blurb: 'Speckled steel, 350 ml. Survives campfires and dishwashers.' },
  { sku: 'beans', name: 'Single-origin beans', price: 1450, blurb: 'Washed Ethiopian, roasted on Tuesday. 250 g, whole bean.' },
  { sku: 'notebook', name: 'Dot-grid notebook', price: 1200, blurb: 'A5, 160 pages of 100 g paper that takes fountain pens.' },
  { sku: 'tote', name: 'Canvas tote', price: 2200, blurb: 'Heavy cotton duck with a leather strap. Carries a week of groceries.' },
];

const BY_SKU = new Map(PRODUCTS.map((p) => [p.sku, p]));

/**
 * Parses the cart the checkout form posts (`sku:qty,sku:qty`) against the catalog.
 * Returns { lines: [{ sku, name, qty, price, amount }], total } or null when it is not a valid cart.
 */
export function priceCart(text) {
  if (typeof text !== 'string' || text.length > 500) return null;
  const lines = [];
  for (const part of text.split(',').filter(Boolean)) {
    const m = /^([a-z]{1,20}):([1-9][0-9]?)$/.exec(part);
    const product = m && BY_SKU.get(m[1]);
    if (!product || lines.some((l) => l.sku === product.sku)) return null;
    const qty = Number(m[2]);
    lines.push({ sku: product.sku, name: product.name, qty, price: product.price, amount: qty * product.price });
  }
  if (lines.length === 0) return null;
  return { lines, total: lines.reduce((sum, l) => sum + l.amount, 0) };
}

/** `1800` -> `$18.00`. */
export const money = (cents) => `$${(cents / 100).toFixed(2)}`;
