// Compiled with `tsc --noEmit` by tests/js/types.test.mjs: fieldseal/react as a React (TypeScript)
// checkout would use it, through the package's exports map; misuse is rejected.
import { createElement } from 'react';
import { ProtectedForm, useSealer, type SealerState } from 'fieldseal/react';

export function Checkout() {
  const { sealer, error, loading }: SealerState = useSealer({ keys: '/v1/keys', pins: ['Xw8bHmsf10M-8Vw3paJ6iB8mMg6_xrsqzUvUbAhorX4'] });
  const code: string | undefined = error?.code;
  const kid: string | undefined = sealer?.keyId;
  return createElement(ProtectedForm, { sealer: loading, options: { strayPan: 'block' }, action: '/pay', method: 'post' }, `${code}${kid}`);
}

// @ts-expect-error: not a stray-PAN mode
createElement(ProtectedForm, { sealer: null, options: { strayPan: 'warn' } });
// @ts-expect-error: load() needs its keys
useSealer({});
