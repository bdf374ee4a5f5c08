import type { FormHTMLAttributes, ReactElement, ReactNode } from 'react';
import type { FieldsealError, LoadOptions, ProtectOptions, Sealer } from './index.js';

export interface SealerState {
  /** The sealer once loaded; null before, and during server-side rendering. */
  sealer: Sealer | null;
  /** Why loading failed (`keyset_fetch`, `keyset_unpinned` ...), or null. */
  error: FieldsealError | null;
  /** The load in flight, for `<ProtectedForm sealer={loading}>`; null during server-side rendering. */
  loading: Promise<Sealer> | null;
}

/** Starts `load(options)` once per component, in the browser only. */
export declare function useSealer(options: LoadOptions): SealerState;

export interface ProtectedFormProps extends Omit<FormHTMLAttributes<HTMLFormElement>, 'children'> {
  /** A Sealer, or the promise of one: the form is closed from its first commit until it resolves. */
  sealer: Sealer | Promise<Sealer> | null;
  /** The options of `protect()`, read when the form is protected. */
  options?: ProtectOptions;
  children?: ReactNode;
}

/** A <form> protected for as long as it is mounted; detached on unmount. */
export declare function ProtectedForm(props: ProtectedFormProps): ReactElement;
