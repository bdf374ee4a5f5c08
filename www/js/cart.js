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

/**
 * Shows the cart in the checkout's order summary (with a remove button a line), fills the form's
 * hidden cart field and the Pay button's amount; resolves to the total.
 */
export async function renderCart(pay) {
  const cart = readCart();
  const catalog = await products();
  const body = document.querySelector('#cart-lines tbody');
  body.replaceChildren();
  let total = 0;
  for (const p of catalog) {
    const qty = cart[p.sku];
    if (!qty) continue;
    total += qty * p.price;
    const row = body.insertRow();
    row.dataset.sku = p.sku;
    row.insertCell().textContent = `${p.name} × ${qty}`;
    const amount = row.insertCell();
    amount.className = 'num';
    amount.textContent = money(qty * p.price);
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'link';
    remove.textContent = 'remove';
    remove.setAttribute('aria-label', `Remove ${p.name}`);
    remove.addEventListener('click', () => {
      delete cart[p.sku];
      writeCart(cart);
      renderCart(pay);
    });
    row.insertCell().append(remove);
  }
  document.getElementById('cart-total').textContent = money(total);
  document.getElementById('cart-empty').hidden = total > 0;
  document.getElementById('cart-field').value = encodeCart(cart);
  pay.textContent = total ? `Pay ${money(total)}` : 'Pay';
  return total;
}
