// fieldseal/react: the package for React checkouts. `useSealer(options)` starts loading the key
// set and the wasm in the browser (never during server-side rendering); `<ProtectedForm
// sealer={...}>` renders a <form> and protects it for as long as it is mounted, from the first
// commit, before the sealer is ready (a submit waits for it), and detaches on unmount. Importing
// this module touches neither `window` nor `document`.
import { createElement, useEffect, useRef, useState } from 'react';
import { load, protect } from './index.js';

/**
 * Loads once per component, in the browser: `{ sealer, error, loading }`, where `loading` is the
 * promise (null during server-side rendering) and `sealer` / `error` follow when it settles.
 */
export function useSealer(options) {
  const [loading] = useState(() => (typeof document === 'undefined' ? null : load(options)));
  const [state, setState] = useState({ sealer: null, error: null });
  useEffect(() => {
    let live = true;
    loading?.then(
      (sealer) => live && setState({ sealer, error: null }),
      (error) => live && setState({ sealer: null, error }),
    );
    return () => {
      live = false;
    };
  }, [loading]);
  return { ...state, loading };
}

/**
 * A <form> protected while it is mounted: `sealer` is a Sealer or the promise of one (`loading`
 * from useSealer), `options` the protect() options; every other prop goes to the form.
 */
export function ProtectedForm({ sealer, options, children, ...props }) {
  const ref = useRef(null);
  useEffect(() => {
    if (!sealer || !ref.current) return undefined;
    const protection = protect(ref.current, sealer, options);
    return () => protection.detach();
  }, [sealer]);
  return createElement('form', { ...props, ref }, children);
}
