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
 * from useSealer), `options` the protect() options (read when it is protected); every other prop
 * goes to the form. Until protect() has run (the server's HTML, the page before hydration, a
 * sealer still null) the fields sit in a disabled fieldset: disabled controls are neither
 * submitted nor typed into, so nothing can be posted in the clear before the form is protected.
 */
export function ProtectedForm({ sealer, options, children, ...props }) {
  const ref = useRef(null);
  const [armed, setArmed] = useState(false);
  useEffect(() => {
    if (!sealer || !ref.current) return undefined;
    const protection = protect(ref.current, sealer, options);
    setArmed(true);
    return () => {
      setArmed(false);
      protection.detach();
    };
  }, [sealer]);
  const fields = createElement('fieldset', { disabled: !armed, style: OPEN_FIELDSET }, children);
  return createElement('form', { ...props, ref }, fields);
}

/** A fieldset that adds no box of its own. */
const OPEN_FIELDSET = Object.freeze({ display: 'contents', border: 0, margin: 0, padding: 0 });
