// The demo in one command (`scripts/demo.sh` runs this after installing the toolchain): builds
// what is not built yet (the `fieldseal` npm package, the vault binary), starts a fresh vault on
// 127.0.0.1 with an embedded SQLite database and new dev keys in a temporary directory, starts the
// shop, and prints the shop's URL, the demo operators' credentials and the demo API keys. Ctrl-C
// stops both and deletes the temporary directory.
//
//   node demo/start.mjs [--port 8080] [--data-dir DIR]
//
// With --data-dir the vault and the orders live in DIR and are kept; a later run with the same DIR
// reuses the vault, revokes the demo API keys of the earlier run, resets the demo operators and
// prints new credentials.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEMO_ROLES, buildVault, startVault } from './vault.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const say = (line) => console.log(`demo: ${line}`);

const { values: args } = parseArgs({
  options: { port: { type: 'string', default: process.env.FIELDSEAL_DEMO_PORT ?? '8080' }, 'data-dir': { type: 'string' } },
});

/** The newest modification time under `paths` (files or directories), in ms. */
function newest(paths) {
  let t = 0;
  const visit = (p) => {
    const s = statSync(p, { throwIfNoEntry: false });
    if (!s) return;
    if (s.isDirectory()) for (const f of readdirSync(p)) visit(join(p, f));
    else t = Math.max(t, s.mtimeMs);
  };
  paths.forEach((p) => visit(join(root, p)));
  return t;
}

function step(n, text) {
  say(`[${n}/3] ${text} (${elapsed()})`);
}

function runVisible(cmd, cmdArgs) {
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    say(`\`${cmd} ${cmdArgs.join(' ')}\` failed; see its output above`);
    process.exit(1);
  }
}

// 1. The browser package, rebuilt when its sources are newer than the build.
const built = statSync(join(root, 'dist', 'sri.json'), { throwIfNoEntry: false })?.mtimeMs ?? 0;
const sources = newest(['js', 'src', 'crates/core/src', 'crates/core/Cargo.toml', 'Cargo.toml', 'Cargo.lock', 'scripts/build-npm.mjs']);
if (built < sources) {
  step(1, built ? 'the browser package is older than its sources: npm run build' : 'building the browser package (wasm, then the JS): npm run build');
  runVisible('npm', ['run', '--silent', 'build']);
} else {
  step(1, 'the browser package in dist/ is up to date');
}

// 2. The vault binary: cargo builds only what changed and shows its own progress.
step(2, 'building the vault: cargo build -p fieldseal-vault');
let bin;
try {
  bin = buildVault();
} catch {
  say('`cargo build -p fieldseal-vault` failed; see its output above');
  process.exit(1);
}

// 3. A vault and the shop. The shop's modules load the package built in step 1.
const { startShop } = await import('./server.mjs');
let dataDir = args['data-dir'];
const temporary = !dataDir;
if (temporary) dataDir = mkdtempSync(join(tmpdir(), 'fieldseal-demo-'));
else mkdirSync(dataDir, { recursive: true, mode: 0o700 });
// However the demo ends, the temporary directory (a master key, the database) goes with it.
process.on('exit', () => {
  vault?.stop();
  if (temporary) rmSync(dataDir, { recursive: true, force: true });
});
let vault;
let shop;
let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  say('stopping');
  await shop?.close();
  await vault?.stop();
  process.exit(code);
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

step(3, `starting the vault and the shop (data in ${dataDir})`);
try {
  // The vault serves the hosted-fields checkout's frames to the shop's origin (its own port: another origin).
  vault = await startVault({ bin, dataDir, fieldsOrigins: [`http://127.0.0.1:${Number(args.port)}`] });
  vault.exited.then(({ code, signal }) => {
    if (stopping) return;
    say(`the vault exited unexpectedly (${signal ?? code}); see ${vault.log}`);
    stop(1);
  });
  shop = await startShop({ vaultUrl: vault.url, keys: vault.keys, operators: vault.operators, dataDir, port: Number(args.port), log: (l) => say(l) });
} catch (e) {
  say(`could not start: ${e.message}${e.code === 'EADDRINUSE' ? ' (pick another port with --port)' : ''}`);
  await stop(1);
}

const pad = (s) => s.padEnd(9);
console.log(`
fieldseal demo is running (ready in ${elapsed()})

  shop:     ${shop.url}/
  hosted:   ${shop.url}/checkout/hosted  (card fields in frames served by the vault)
  console:  ${shop.url}/console
  vault:    ${vault.url}  (log: ${vault.log})

Demo operators: sign in to the console with name, password and a code from an authenticator
app (add the otpauth:// URI to it, e.g. as a QR code, or compute codes with \`oathtool --totp -b\`
and the URI's secret).
${Object.entries(vault.operators).map(([r, o]) => `  ${pad(o.name)} role ${pad(r)} password ${o.password}\n${' '.repeat(12)}${o.totp}`).join('\n')}
  (support sees masked values; payments card numbers in the clear, with a code entered in the
   last 5 minutes; auditor the whole audit log; privacy exports and erases a customer's data;
   security sees every key's and operator's lock state and unlocks callers locked for a reveal
   anomaly, with a fresh code)

Demo API keys (services, not people):
${DEMO_ROLES.map((r) => `  ${pad(r)} ${vault.keys[r]}`).join('\n')}
  (checkout is the shop back end's key; the console reads other operators' own audit entries
   with auditor)

Test cards: 4242 4242 4242 4242 (Visa), 2223 0031 2200 3222 (Mastercard),
            3782 822463 10005 (American Express); any future expiry, any CVC.

Ctrl-C stops the demo${temporary ? ' and deletes its temporary data' : ''}.`);

