// Runs the real `fieldseal-vault` binary for the demo: `init --dev` in a data directory (a
// development vault: a fresh master key file next to the database, and an HPKE key; skipped when
// the directory holds a vault already), the API keys of the demo's two services through
// `apikey create` (the demo keys of an earlier run are revoked), one operator (a person: password
// and TOTP) per console role through `operator add` (`operator reset` when an earlier run enrolled
// them: new credentials), then `serve` on 127.0.0.1 with a port the system picks. The vault's own
// log goes to `vault.log` in the data directory.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

const run = promisify(execFile);

const root = fileURLToPath(new URL('../', import.meta.url));

/**
 * Builds the vault binary (`cargo build` does only what changed; its output goes to the terminal)
 * and returns its path. Throws when the build fails.
 */
export function buildVault({ quiet = false } = {}) {
  execFileSync('cargo', ['build', ...(quiet ? ['-q'] : []), '-p', 'fieldseal-vault', '--bin', 'fieldseal-vault'], { cwd: root, stdio: 'inherit' });
  const meta = JSON.parse(execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], { cwd: root, encoding: 'utf8' }));
  return join(meta.target_directory, 'debug', 'fieldseal-vault');
}

/**
 * The roles the demo creates an API key for: the shop's back end tokenizes with `checkout`; the
 * console's server reads the audit trail with `auditor` for operators whose role may not.
 */
export const DEMO_ROLES = ['checkout', 'auditor'];

/** The demo's operators (people, who sign in to the console with password and TOTP), by role. */
export const DEMO_OPERATORS = { support: 'sasha', payments: 'pat', auditor: 'avery', privacy: 'priya', security: 'sam' };

function vaultEnv(dataDir) {
  // The demo's vault is its own: no settings file, key file, policy or database from the caller's
  // environment.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FIELDSEAL_')));
  return { ...env, FIELDSEAL_DATA_DIR: dataDir, FIELDSEAL_LISTEN: '127.0.0.1:0', FIELDSEAL_LOG_FORMAT: 'text' };
}

/**
 * Enrols operator `name` for `role` (`operator add`), or gives it new credentials (`operator
 * reset`); returns { name, role, password, totp } with the `otpauth://` URI as `totp`.
 */
async function enrol(bin, env, name, role, reset = false) {
  const args = reset ? ['operator', 'reset', name] : ['operator', 'add', name, '--role', role];
  const { stdout } = await run(bin, args, { env });
  const password = /^password: (\S+)$/m.exec(stdout)?.[1];
  const totp = /^totp: (otpauth:\/\/totp\/\S+)$/m.exec(stdout)?.[1];
  if (!password || !totp) throw new Error(`operator ${args[1]} for ${role} printed no credentials`);
  return { name, role, password, totp };
}

/** Revokes the active API keys an earlier demo run made (labelled `demo <role>`). */
async function revokeEarlierDemoKeys(bin, env) {
  const { stdout } = await run(bin, ['apikey', 'list'], { env });
  for (const line of stdout.split('\n').slice(1)) {
    const [id, , status, , ...label] = line.trim().split(/\s+/);
    if (status === 'active' && label.join(' ').startsWith('demo ')) await run(bin, ['apikey', 'revoke', id], { env });
  }
}

/**
 * Initializes a vault in `dataDir`, creates the demo API keys and operators and starts serving. With
 * `fieldsOrigins`, the vault also serves the hosted field frames (the built package in dist/) to
 * those merchant origins, and the .woff2 fonts of `fieldsFontsDir`. `stepUpSecs` sets the vault's
 * `step_up_secs` (how long after a TOTP code an operator may reveal in the clear).
 * Returns { url, keys: { role: apiKey }, operators: { role: { name, role, password, totp } }, stop() },
 * where `totp` is the operator's `otpauth://` enrolment URI.
 */
export async function startVault({ bin, dataDir, fieldsOrigins = [], fieldsFontsDir, stepUpSecs }) {
  const env = vaultEnv(dataDir);
  // A shorter step-up window than the vault's 300 s, for tests that need one to lapse.
  if (stepUpSecs) env.FIELDSEAL_STEP_UP_SECS = String(stepUpSecs);
  if (fieldsOrigins.length) {
    env.FIELDSEAL_FIELDS_DIR = join(root, 'dist');
    env.FIELDSEAL_FIELDS_ORIGINS = fieldsOrigins.join(',');
    if (fieldsFontsDir) env.FIELDSEAL_FIELDS_FONTS_DIR = fieldsFontsDir;
  }
  if (existsSync(join(dataDir, 'vault.db'))) await revokeEarlierDemoKeys(bin, env);
  else await run(bin, ['init', '--dev'], { env });
  const keys = {};
  const operators = {};
  const { stdout: enrolled } = await run(bin, ['operator', 'list'], { env });
  const known = new Set(enrolled.split('\n').slice(1).map((l) => l.trim().split(/\s+/)[0]));
  for (const [role, name] of Object.entries(DEMO_OPERATORS)) {
    // An earlier run's operator gets new credentials (its sessions end, any lock is lifted).
    operators[role] = await enrol(bin, env, name, role, known.has(name));
  }
  for (const role of DEMO_ROLES) {
    const { stdout } = await run(bin, ['apikey', 'create', '--role', role, '--label', `demo ${role}`], { env });
    keys[role] = stdout.trim();
    if (!/^fsk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/.test(keys[role])) throw new Error(`apikey create for ${role} printed no key`);
  }
  const log = createWriteStream(join(dataDir, 'vault.log'));
  // Its own process group: Ctrl-C in the terminal reaches the demo, which stops the vault itself.
  const child = spawn(bin, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  child.stderr.pipe(log);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const m = /^fieldseal-vault listening on (http:\/\/\S+)$/.exec(line);
      if (m) resolve(m[1]);
    });
    exited.then(({ code, signal }) =>
      reject(new Error(`fieldseal-vault serve exited (${signal ?? code}); see ${join(dataDir, 'vault.log')}`)));
  });
  return {
    url,
    keys,
    operators,
    /** Enrols one more operator; resolves with { name, role, password, totp }. */
    addOperator: (name, role) => enrol(bin, env, name, role),
    /** Runs a `fieldseal-vault` command on this vault; resolves with its standard output. */
    cli: async (args) => (await run(bin, args, { env })).stdout,
    log: join(dataDir, 'vault.log'),
    /** Resolves with { code, signal } when the process exits. */
    exited,
    /** Graceful shutdown (SIGTERM), waiting for the process to exit. */
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
