// A React checkout built by a bundler (Vite or webpack) from the installed package:
// `fieldseal/react`'s useSealer() and <ProtectedForm>, and a button that unmounts the form.
import { createElement as h, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { ProtectedForm, useSealer } from 'fieldseal/react';

const input = (id, props) => h('input', { id, name: id, ...props });

function Checkout() {
  const { loading, sealer } = useSealer({ keys: '/v1/keys' });
  if (sealer) document.body.dataset.ready = '1';
  return h(ProtectedForm, { sealer: loading, id: 'checkout', action: '/pay', method: 'post', noValidate: true },
    input('card', { autoComplete: 'cc-number', inputMode: 'numeric', required: true }),
    input('exp', { autoComplete: 'cc-exp', required: true }),
    input('cvc', { autoComplete: 'cc-csc', required: true }),
    input('holder', { 'data-seal': 'name' }),
    input('email', { type: 'email', autoComplete: 'email', required: true }),
    h('textarea', { id: 'notes', name: 'notes' }),
    h('button', { id: 'pay' }, 'Pay'));
}

function App() {
  const [shown, setShown] = useState(true);
  window.unmount = () => setShown(false);
  return shown ? h(Checkout) : h('p', { id: 'unmounted' }, 'unmounted');
}

createRoot(document.getElementById('root')).render(h(App));
