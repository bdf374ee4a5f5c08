// The operator console's API, served by the demo next to the shop. The console page signs in with a
// vault API key, which stays in the page's memory and is sent with each call; these handlers pass
// it to the vault, so the vault's roles decide what the operator sees: masked values for support,
// plain card numbers for payments (with a purpose), a refusal that says why otherwise. The audit
// trail: an operator whose role may read the audit log sees the whole log, read with their own key;
// any other operator sees only the entries of their own key (this session's reveals and refusals),
// which the demo reads with its auditor key. Both views carry the whole chain's verification. The
// newest AUDIT_SHOWN entries are shown.

const AUDIT_SHOWN = 500;

/** Key id of an API key (`fsk_<id>_<secret>`). */
const keyId = (key) => /^fsk_([0-9a-f]{12})_/.exec(key ?? '')?.[1] ?? null;

export function consoleApi({ vaultUrl, keys, orders, fetchImpl = fetch }) {
  const roleOfKeyId = new Map(Object.entries(keys).map(([role, key]) => [keyId(key), role]));

  async function vault(path, { key, method = 'GET', body } = {}) {
    const headers = { authorization: `Bearer ${key}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetchImpl(`${vaultUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: r.status, body: await r.json().catch(() => ({ error: { code: 'bad_gateway', message: 'the vault sent no JSON' } })) };
  }

  const bearer = (req) => /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';

  /** The signed-in operator, or the vault's 401 answer. */
  async function operator(req) {
    return vault('/v1/me', { key: bearer(req) });
  }

  async function auditTrail(me, key) {
    const own = !me.permissions.audit;
    const readKey = own ? keys.auditor : key;
    const entries = [];
    let after = 0;
    for (;;) {
      const page = await vault(`/v1/audit?after=${after}&limit=1000`, { key: readKey });
      if (page.status !== 200) return page;
      const mine = (e) => e.actor === `apikey:${me.key_id}`;
      entries.push(...(own ? page.body.entries.filter(mine) : page.body.entries));
      if (page.body.entries.length < 1000) break;
      after = page.body.next_after;
    }
    const verify = await vault('/v1/audit/verify', { key: readKey });
    if (verify.status !== 200) return verify;
    const shown = entries.slice(-AUDIT_SHOWN);
    for (const e of shown) {
      const id = /^apikey:([0-9a-f]{12})$/.exec(e.actor)?.[1];
      e.actor_role = (id && roleOfKeyId.get(id)) ?? null;
    }
    return {
      status: 200,
      body: { scope: own ? 'own' : 'all', total: entries.length, entries: shown, verification: verify.body },
    };
  }

  /** Handles `/console/api/*`; returns { status, body }. */
  return async function handle(req, path, readJson) {
    const me = await operator(req);
    if (me.status !== 200) return me;
    switch (`${req.method} ${path}`) {
      case 'GET /console/api/me':
        return me;
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
        return vault('/v1/detokenize', { key: bearer(req), method: 'POST', body: { tokens: req_.tokens, purpose: req_.purpose } });
      }
      case 'GET /console/api/audit':
        return auditTrail(me.body, bearer(req));
      default: {
        // A customer's data: export or erasure, as the signed-in key's role allows.
        const subject = /^\/console\/api\/subjects\/(cus_[0-9a-f]{16})\/(export|erase)$/.exec(path);
        if (subject && req.method === 'GET' && subject[2] === 'export') {
          return vault(`/v1/subjects/${subject[1]}/export`, { key: bearer(req) });
        }
        if (subject && req.method === 'POST' && subject[2] === 'erase') {
          return vault(`/v1/subjects/${subject[1]}`, { key: bearer(req), method: 'DELETE' });
        }
        return { status: 404, body: { error: { code: 'not_found', message: 'no such console endpoint' } } };
      }
    }
  };
}
