// Builds the npm package `fieldseal` into dist/:
//   1. the wasm: `cargo build -p fieldseal --target wasm32-unknown-unknown --profile wasm-release
//      --no-default-features` (release with LTO, optimized for size; without `std`, so without
//      the formatting machinery of std's panic handler; fieldseal-core without its `open` feature);
//   2. wasm-bindgen (the CLI at exactly the crate's pinned version) with `--target web`: an ES
//      module that instantiates with WebAssembly.instantiateStreaming, no eval or new Function;
//   3. wasm-opt -Oz --converge from the npm package `binaryen` (a devDependency: `npm ci` installs it);
//   4. the hand-written JS from js/ and the wasm-bindgen glue, minified by esbuild (a
//      devDependency; whitespace, syntax and local names only: exports, property names and
//      strings stay as written), and the TypeScript declarations from js/ as written;
//   5. dist/sri.json: the sha384 Subresource Integrity hash of every shipped file, and
//      target/npm-sizes.json: raw, gzip -9 and brotli sizes of what a page downloads (and of
//      fieldseal/react, which React pages download on top).
// It installs nothing: a missing or different wasm-bindgen CLI, or a missing binaryen, is an error
// that says which command installs it (scripts/setup.sh does, for the tests).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
const out = (cmd, args) => execFileSync(cmd, args, { cwd: root, encoding: 'utf8' });

function fail(message) {
  console.error(`build: ${message}`);
  process.exit(1);
}

// The wasm-bindgen CLI must match the crate exactly: the generated glue and the wasm's schema
// are version-locked.
const lock = readFileSync(join(root, 'Cargo.lock'), 'utf8');
const pinned = /name = "wasm-bindgen"\nversion = "([^"]+)"/.exec(lock)?.[1];
if (!pinned) fail('wasm-bindgen not found in Cargo.lock');
let cliVersion = '';
try {
  cliVersion = out('wasm-bindgen', ['--version']).trim().split(/\s+/)[1];
} catch {
  fail(`wasm-bindgen CLI not found; install it with: cargo install wasm-bindgen-cli --version ${pinned}`);
}
if (cliVersion !== pinned) {
  fail(`wasm-bindgen CLI is ${cliVersion}, the crate pins ${pinned}; run: cargo install wasm-bindgen-cli --version ${pinned}`);
}
const wasmOpt = join(root, 'node_modules', '.bin', 'wasm-opt');
try {
  statSync(wasmOpt);
} catch {
  fail('wasm-opt not found; run `npm ci` (the npm package binaryen is a devDependency)');
}
let transformSync;
try {
  ({ transformSync } = await import('esbuild'));
} catch {
  fail('esbuild not found; run `npm ci` (the npm package esbuild is a devDependency)');
}

console.log('build: cargo build (wasm32, profile wasm-release, without std)');
run('cargo', ['build', '-p', 'fieldseal', '--target', 'wasm32-unknown-unknown', '--profile', 'wasm-release',
  '--no-default-features']);
const wasmIn = join(root, 'target', 'wasm32-unknown-unknown', 'wasm-release', 'fieldseal.wasm');

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, 'wasm'), { recursive: true });

console.log(`build: wasm-bindgen ${cliVersion} --target web`);
run('wasm-bindgen', ['--target', 'web', '--no-typescript', '--out-dir', join(dist, 'wasm'), '--out-name', 'fieldseal', wasmIn]);

// --converge repeats -Oz while it still shrinks the module. --low-memory-unused and
// --zero-filled-memory state what holds for this module: its memory is its own (not imported, so
// it starts zeroed) and nothing lives in the first 1 KiB (Rust puts the stack first, from 1 MiB).
console.log('build: wasm-opt -Oz --converge');
const bg = join(dist, 'wasm', 'fieldseal_bg.wasm');
run(wasmOpt, ['-Oz', '--converge', '--low-memory-unused', '--zero-filled-memory', '--enable-bulk-memory', '--enable-nontrapping-float-to-int', '--enable-sign-ext',
  '--enable-mutable-globals', '--enable-reference-types', '--enable-multivalue', '--strip-debug', '--strip-producers',
  bg, '-o', bg]);

console.log('build: JS layer (minified) and declarations');
// ES2022 is what the package already needs (class private fields); browsers with
// WebAssembly.instantiateStreaming and `import.meta` all have it.
const minify = (from, to) => {
  const { code } = transformSync(readFileSync(from, 'utf8'), {
    loader: 'js', format: 'esm', target: 'es2022', minify: true, legalComments: 'none', charset: 'utf8',
  });
  writeFileSync(to, code);
};
for (const f of readdirSync(join(root, 'js'))) {
  if (f.endsWith('.d.ts')) cpSync(join(root, 'js', f), join(dist, f));
  else if (f.endsWith('.js')) minify(join(root, 'js', f), join(dist, f));
}
const glue = join(dist, 'wasm', 'fieldseal.js');
minify(glue, glue);

// Hosted fields (js/hosted/): the merchant-side loader `fieldseal/hosted` (dist/hosted.js) and the
// frame the vault serves (dist/frame/: frame.js with the SDK and the wasm glue in one module, so
// that one SRI hash covers all of its JS, and frame.css). Each bundled and minified by esbuild.
console.log('build: hosted fields (loader and frame)');
const { build } = await import('esbuild');
// The frame's SDK is the one just built into dist/ (with the wasm-bindgen glue), not js/.
const fromDist = {
  name: 'sdk-from-dist',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/(index|protect)\.js$/ }, (a) => ({ path: join(dist, a.path.slice(3)) }));
  },
};
const bundle = (entry, outfile) => build({
  entryPoints: [join(root, 'js', 'hosted', entry)], outfile, bundle: true, format: 'esm', target: 'es2022',
  minify: true, legalComments: 'none', charset: 'utf8', logLevel: 'warning', plugins: [fromDist],
});
await bundle('loader.js', join(dist, 'hosted.js'));
mkdirSync(join(dist, 'frame'));
await bundle('frame.js', join(dist, 'frame', 'frame.js'));
cpSync(join(root, 'js', 'hosted', 'frame.css'), join(dist, 'frame', 'frame.css'));
// Their gzip -9 forms, which the vault serves to browsers that accept gzip (it checks each
// against the file's CRC-32 and length at start): the vault has no compressor of its own.
for (const f of ['frame/frame.js', 'frame/frame.css', 'wasm/fieldseal_bg.wasm']) {
  writeFileSync(join(dist, 'frame', `${f.split('/').pop()}.gz`), gzipSync(readFileSync(join(dist, f)), { level: 9 }));
}

// Nothing in the package may evaluate strings as code: a strict CSP must work.
const walk = (dir) => readdirSync(dir).flatMap((f) => {
  const p = join(dir, f);
  return statSync(p).isDirectory() ? walk(p) : [p];
});
for (const f of walk(dist).filter((p) => p.endsWith('.js'))) {
  const src = readFileSync(f, 'utf8');
  if (/\beval\s*\(|new\s+Function\s*\(/.test(src)) fail(`${relative(root, f)} uses eval or new Function`);
}

// SRI manifest and sizes of every shipped file (sri.json itself excepted).
const files = walk(dist).map((p) => relative(dist, p)).sort();
const sri = {};
const sizes = {};
for (const f of files) {
  const data = readFileSync(join(dist, f));
  sri[f] = `sha384-${createHash('sha384').update(data).digest('base64')}`;
  sizes[f] = {
    raw: data.length,
    gzip: gzipSync(data, { level: 9 }).length,
    brotli: brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
  };
}
// What a page downloads: the JS modules it imports and the wasm (declarations are not downloaded).
// fieldseal/react (react.js) only for React pages, on top: listed, not in the total. Hosted
// fields are another mode with their own figures: the loader (hosted.js) in the merchant's page,
// and the frame (frame/ and the wasm) from the vault.
const hostedFile = (f) => f === 'hosted.js' || f.startsWith('frame/');
const page = files.filter((f) => (f.endsWith('.js') || f.endsWith('.wasm')) && f !== 'react.js' && !hostedFile(f));
const total = { raw: 0, gzip: 0, brotli: 0 };
for (const f of page) for (const k of Object.keys(total)) total[k] += sizes[f][k];
const frameFiles = ['frame/frame.js', 'frame/frame.css', 'wasm/fieldseal_bg.wasm'];
const frame = { raw: 0, gzip: 0, brotli: 0 };
for (const f of frameFiles) for (const k of Object.keys(frame)) frame[k] += sizes[f][k];
writeFileSync(join(dist, 'sri.json'), `${JSON.stringify({ algorithm: 'sha384', files: sri }, null, 2)}\n`);
writeFileSync(join(root, 'target', 'npm-sizes.json'), `${JSON.stringify({ files: sizes, page, total, frameFiles, frame }, null, 2)}\n`);

const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log('build: what a page downloads');
for (const f of page) console.log(`  ${f.padEnd(24)} raw ${kb(sizes[f].raw).padStart(10)}  gzip ${kb(sizes[f].gzip).padStart(9)}  brotli ${kb(sizes[f].brotli).padStart(9)}`);
console.log(`  ${'total'.padEnd(24)} raw ${kb(total.raw).padStart(10)}  gzip ${kb(total.gzip).padStart(9)}  brotli ${kb(total.brotli).padStart(9)}`);
console.log(`  ${'+ react.js (React pages)'.padEnd(24)} raw ${kb(sizes['react.js'].raw).padStart(10)}  gzip ${kb(sizes['react.js'].gzip).padStart(9)}  brotli ${kb(sizes['react.js'].brotli).padStart(9)}`);
console.log(`  ${'hosted: loader'.padEnd(24)} raw ${kb(sizes['hosted.js'].raw).padStart(10)}  gzip ${kb(sizes['hosted.js'].gzip).padStart(9)}  brotli ${kb(sizes['hosted.js'].brotli).padStart(9)}`);
console.log(`  ${'hosted: frame files'.padEnd(24)} raw ${kb(frame.raw).padStart(10)}  gzip ${kb(frame.gzip).padStart(9)}  brotli ${kb(frame.brotli).padStart(9)}`);
console.log('build: dist/ ready');
