// The operator console's API, served by the demo next to the shop. People sign in as the vault's
// operators: name, password and a TOTP code go to the vault's `POST /v1/operators/sign-in`, and the
// session token it gives goes back to the console page, which keeps it in its memory only and
// sends it with each call; these handlers pass it on to the vault. No cookie: the console shares
// the shop's origin, and a cookie would let any script on the shop's pages act with it (the
// vault's own cookie is for consoles on an origin of their own). So the vault's roles decide
// what the operator sees: masked values for support, plain card numbers for payments (with a
// purpose, and a TOTP code entered within the vault's `step_up_secs`: else the vault answers
// `step_up_required` and the page asks for a code, `POST /console/api/step-up`), a refusal that
// says why otherwise. The audit trail: an operator whose role may read the audit log sees the whole
// log, read with their own session; any other operator sees only their own entries, which the demo
// reads with its auditor key. Both views carry the whole chain's verification. The newest
// AUDIT_SHOWN entries are shown. Operators whose role reads the audit log or unlocks callers see
// every API key's and operator's state and reveal lock (the vault's `GET /v1/locks`); a role with
// `unlock` (security) lifts a lock, with a fresh code.

const AUDIT_SHOWN = 500;

/** Key id of an API key (`fsk_<id>_<secret>`). */
const keyId = (key) => /^fsk_([0-9a-f]{12})_/.exec(key ?? '')?.[1] ?? null;

/** The operator session token the page sent (`Authorization: Bearer fso_…`), or ''. */
const sessionOf = (req) => /^Bearer (fso_[A-Za-z0-9_-]+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';

const signedOut = { status: 401, body: { error: { code: 'signed_out', message: 'not signed in (or the session ended): sign in again' } } };

/**
 * `operators` maps each demo role to its operator ({ name }), for showing roles in the audit
 * trail; `keys` the demo's API keys by role (`auditor` reads the trail for the other operators).
 */
export function consoleApi({ vaultUrl, keys, operators = {}, orders, fetchImpl = fetch }) {
  const roleOfActor = new Map([
    ...Object.entries(keys).map(([role, key]) => [`apikey:${keyId(key)}`, role]),
    ...Object.entries(operators).map(([role, op]) => [`operator:${op.name}`, role]),
  ]);

  async function vault(path, { key, method = 'GET', body } = {}) {
    const headers = { authorization: `Bearer ${key}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetchImpl(`${vaultUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: r.status, body: await r.json().catch(() => ({ error: { code: 'bad_gateway', message: 'the vault sent no JSON' } })) };
  }

  /** The signed-in operator, or a 401 answer (no session token, or the vault's). */
  async function operator(session) {
    if (!session) return signedOut;
    return vault('/v1/me', { key: session });
  }

  /** `POST /console/api/sign-in`: the vault checks name, password and code; its answer (the session token) goes to the page. */
  async function signIn(body) {
    if (!body || typeof body.name !== 'string' || typeof body.password !== 'string' || typeof body.totp !== 'string') {
      return { status: 400, body: { error: { code: 'bad_request', message: 'expected {"name": "...", "password": "...", "totp": "123456"}' } } };
    }
    return vault('/v1/operators/sign-in', { method: 'POST', body: { name: body.name, password: body.password, totp: body.totp } });
  }

  async function auditTrail(me, session) {
    const own = !me.permissions.audit;
    const readKey = own ? keys.auditor : session;
    const self = me.operator ? `operator:${me.operator.name}` : `apikey:${me.key_id}`;
    const entries = [];
    let after = 0;
    for (;;) {
      const page = await vault(`/v1/audit?after=${after}&limit=1000`, { key: readKey });
      if (page.status !== 200) return page;
      const mine = (e) => e.actor === self;
      entries.push(...(own ? page.body.entries.filter(mine) : page.body.entries));
      if (page.body.entries.length < 1000) break;
      after = page.body.next_after;
    }
    const verify = await vault('/v1/audit/verify', { key: readKey });
    if (verify.status !== 200) return verify;
    const shown = entries.slice(-AUDIT_SHOWN);
    for (const e of shown) e.actor_role = roleOfActor.get(e.actor) ?? null;
    return {
      status: 200,
      body: { scope: own ? 'own' : 'all', total: entries.length, entries: shown, verification: verify.body },
    };
  }

  /** Handles `/console/api/*`; returns { status, body }. */
  return async function handle(req, path, readJson) {
    if (req.method === 'POST' && path === '/console/api/sign-in') return signIn(await readJson());
    const session = sessionOf(req);
    if (req.method === 'POST' && path === '/console/api/sign-out') {
      // Ended at the vault (audited).
      const r = session ? await vault('/v1/operators/sign-out', { key: session, method: 'POST' }) : { status: 204 };
      return { status: 200, body: { signed_out: r.status === 204 } };
    }
    const me = await operator(session);
    if (me.status !== 200) return me;
    switch (`${req.method} ${path}`) {
      case 'GET /console/api/me':
        return me;
      case 'POST /console/api/step-up': {
        const body = await readJson();
        if (!body || typeof body.totp !== 'string') {
          return { status: 400, body: { error: { code: 'bad_request', message: 'expected {"totp": "123456"}' } } };
        }
        return vault('/v1/operators/step-up', { key: session, method: 'POST', body: { totp: body.totp } });
      }
      case 'GET /console/api/orders':
        return {
          status: 200,
          body: {
            orders: orders.list().map((o) => ({
              id: o.id, created: o.created, customer: o.customer, total: o.total, card: { brand: o.card.brand, last4: o.card.last4 }, tokens: o.tokens,
            })),
          },
        };
      case 'POST /console/api/reveal': {
        const req_ = await readJson();
        if (!req_ || !Array.isArray(req_.tokens) || typeof req_.purpose !== 'string') {
          return { status: 400, body: { error: { code: 'bad_request', message: 'expected {"tokens": [...], "purpose": "..."}' } } };
        }
        return vault('/v1/detokenize', { key: session, method: 'POST', body: { tokens: req_.tokens, purpose: req_.purpose } });
      }
      case 'GET /console/api/audit':
        return auditTrail(me.body, session);
      case 'GET /console/api/locks':
        // Every API key and operator with its state and reveal lock (roles with audit or unlock).
        return vault('/v1/locks', { key: session });
      case 'POST /console/api/unlock': {
        const body = await readJson();
        if (!body || typeof body.caller !== 'string') {
          return { status: 400, body: { error: { code: 'bad_request', message: 'expected {"caller": "apikey:ID"}' } } };
        }
        // The vault decides: an operator of a role with unlock, with a fresh second factor.
        return vault('/v1/locks/unlock', { key: session, method: 'POST', body: { caller: body.caller } });
      }
      default: {
        // A customer's data: export or erasure, as the signed-in key's role allows.
        const subject = /^\/console\/api\/subjects\/(cus_[0-9a-f]{16})\/(export|erase)$/.exec(path);
        if (subject && req.method === 'GET' && subject[2] === 'export') {
          return vault(`/v1/subjects/${subject[1]}/export`, { key: session });
        }
        if (subject && req.method === 'POST' && subject[2] === 'erase') {
          return vault(`/v1/subjects/${subject[1]}`, { key: session, method: 'DELETE' });
        }
        return { status: 404, body: { error: { code: 'not_found', message: 'no such console endpoint' } } };
      }
    }
  };
}
