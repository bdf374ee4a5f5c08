// fieldseal/react on the server: rendering a checkout with useSealer() and <ProtectedForm> to HTML
// in Node touches neither `window` nor `document`, starts no load, and gives a plain <form>.
// Run `npm run build` first (scripts/test.sh does).
import assert from 'node:assert/strict';
import { test } from 'node:test';

test('server-side rendering of fieldseal/react touches no window and loads nothing', async () => {
  assert.equal(typeof globalThis.window, 'undefined');
  const touched = [];
  for (const name of ['window', 'document']) {
    Object.defineProperty(globalThis, name, {
      configurable: true,
      get() {
        touched.push(name);
        return undefined;
      },
    });
  }
  const fetches = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (u) => {
    fetches.push(u);
    throw new Error('no fetch during rendering');
  };
  try {
    const { createElement: h } = await import('react');
    const { renderToString } = await import('react-dom/server');
    const { ProtectedForm, useSealer } = await import(new URL('../../dist/react.js', import.meta.url));
    let state;
    function Checkout() {
      state = useSealer({ keys: 'https://vault.example/v1/keys' });
      return h(ProtectedForm, { sealer: state.loading, action: '/pay', method: 'post', id: 'checkout' },
        h('input', { name: 'card', autoComplete: 'cc-number' }));
    }
    const html = renderToString(h(Checkout));
    // The server's form is closed: its fields sit in a disabled fieldset until protect() has run
    // in the browser, so a Pay pressed before hydration posts nothing.
    assert.match(html, /^<form id="checkout" action="\/pay" method="post"><fieldset disabled="" style="[^"]*display:contents[^"]*"><input autoComplete="cc-number" name="card"\/><\/fieldset><\/form>$/);
    assert.deepEqual(state, { sealer: null, error: null, loading: null });
    // The only look at a DOM global is useSealer's `typeof document` check, which finds none.
    assert.deepEqual(touched.filter((n) => n === 'window'), []);
    assert.deepEqual(fetches, []);
  } finally {
    delete globalThis.window;
    delete globalThis.document;
    globalThis.fetch = realFetch;
  }
});
