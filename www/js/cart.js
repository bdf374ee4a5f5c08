// The cart, kept in this browser's localStorage as { sku: quantity }. The server prices it again
// from its own catalog; nothing here is trusted.
const KEY = 'tidewater-cart';

export function readCart() {
  try {
    const cart = JSON.parse(localStorage.getItem(KEY) ?? '{}');
    return cart && typeof cart === 'object' ? cart : {};
  } catch {
    return {};
  }
}

export function writeCart(cart) {
  for (const [sku, qty] of Object.entries(cart)) if (!(qty > 0)) delete cart[sku];
  localStorage.setItem(KEY, JSON.stringify(cart));
  showCount(cart);
}

export const clearCart = () => writeCart({});

export const count = (cart) => Object.values(cart).reduce((n, q) => n + q, 0);

/** `sku:qty,sku:qty`, the form's `cart` field. */
export const encodeCart = (cart) => Object.entries(cart).map(([sku, qty]) => `${sku}:${qty}`).join(',');

export const money = (cents) => `$${(cents / 100).toFixed(2)}`;

export async function products() {
  const r = await fetch('/api/products');
  return (await r.json()).products;
}

export function showCount(cart = readCart()) {
  const nav = document.getElementById('nav-cart');
  if (nav) nav.textContent = count(cart) ? `Cart (${count(cart)})` : 'Cart';
}
