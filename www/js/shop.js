// The product list and "Add to cart". On a receipt page, the cart is emptied.
import { count, money, products, readCart, showCount, writeCart, clearCart } from './cart.js';

function summary(cart) {
  const n = count(cart);
  document.getElementById('cart-summary').textContent = n ? `${n} item${n === 1 ? '' : 's'} in your cart.` : 'Your cart is empty.';
  document.getElementById('go-checkout').hidden = n === 0;
  document.getElementById('go-checkout-hosted').hidden = n === 0;
}

async function main() {
  if (document.getElementById('receipt')) {
    clearCart();
    return;
  }
  showCount();
  const list = document.getElementById('products');
  if (!list) return;
  for (const p of await products()) {
    const card = document.createElement('article');
    card.className = 'product';
    card.dataset.sku = p.sku;
    const img = document.createElement('img');
    img.src = `/img/${p.sku}.svg`;
    img.alt = '';
    img.width = 240;
    img.height = 160;
    const h = document.createElement('h2');
    h.textContent = p.name;
    const blurb = document.createElement('p');
    blurb.textContent = p.blurb;
    const price = document.createElement('p');
    price.className = 'price';
    price.textContent = money(p.price);
    const add = document.createElement('button');
    add.className = 'button add';
    add.type = 'button';
    add.textContent = 'Add to cart';
    add.addEventListener('click', () => {
      const cart = readCart();
      cart[p.sku] = Math.min((cart[p.sku] ?? 0) + 1, 99);
      writeCart(cart);
      summary(cart);
      add.textContent = 'Added ✓';
      setTimeout(() => { add.textContent = 'Add to cart'; }, 1200);
    });
    card.append(img, h, blurb, price, add);
    list.append(card);
  }
  list.setAttribute('aria-busy', 'false');
  summary(readCart());
  document.body.dataset.ready = '1';
}

main();
