// fieldseal/react in real bundles: the same React checkout (tests/browser/react-app) built by
// Vite 7 and by webpack 5 from the package installed as a dependency, each driven in Chromium:
// the form seals and submits envelopes only, and unmounting the form detaches the protection.
// Run `npm run build` first (scripts/test.sh does).
import assert from 'node:assert/strict';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { appWithPackage, fillValid, leaks, openPage, root, SECRETS, submitForm, withBrowser } from './harness.mjs';
import { parseEnvelope } from '../../js/envelope.js';

const env = withBrowser({
    '/react-vite/': join(root, 'target/react-vite/dist'),
    '/react-webpack/': join(root, 'target/react-webpack/dist'),
  });

/** Seals and submits, then, on a fresh page, unmounts the form: the protection is detached. */
async function drive(path) {
  const { page } = await openPage(env.browser, `${env.server.url}${path}`);
  assert.equal(await page.evaluate(() => document.body.dataset.ready), '1', 'the sealer loaded');
  await fillValid(page);
  assert.equal(await page.inputValue('#card'), SECRETS.panSpaced, 'formatted as typed: protected');
  const { raw, fields } = await submitForm(env.server, page);
  for (const name of ['card', 'exp', 'cvc', 'holder', 'email']) assert.ok(fields[name]?.startsWith('fse1.'), name);
  assert.equal(parseEnvelope(fields.card).kind, 'pan');
  assert.deepEqual(leaks(raw), []);
  await page.close();

  const { page: again } = await openPage(env.browser, `${env.server.url}${path}`);
  const [before, after, unmounted] = await again.evaluate(async () => {
    const form = document.querySelector('#checkout');
    const protectedBefore = Object.hasOwn(form, 'submit');
    window.unmount();
    await new Promise((r) => setTimeout(r, 100));
    return [protectedBefore, Object.hasOwn(form, 'submit'), Boolean(document.querySelector('#unmounted'))];
  });
  assert.deepEqual([before, after, unmounted], [true, false, true], 'protected while mounted, detached on unmount');
  await again.close();
}

test('a React checkout built by Vite 7 seals, submits and detaches on unmount', async () => {
  const app = appWithPackage('react-vite', 'tests/browser/react-app');
  const { build, version } = await import('vite');
  assert.match(version, /^7\./);
  await build({ root: app, base: '/react-vite/', logLevel: 'warn', build: { outDir: join(app, 'dist'), emptyOutDir: true } });
  assert.ok(!readFileSync(join(app, 'dist/index.html'), 'utf8').includes('main.js"'), 'bundled');
  await drive('/react-vite/');
});

test('a React checkout built by webpack 5 seals, submits and detaches on unmount', async () => {
  const app = appWithPackage('react-webpack', 'tests/browser/react-app');
  const { default: webpack } = await import('webpack');
  assert.match(webpack.version, /^5\./);
  const stats = await new Promise((resolve, reject) => {
    webpack({
      mode: 'production',
      context: app,
      entry: './main.js',
      output: { path: join(app, 'dist'), filename: 'main.js', publicPath: 'auto' },
      performance: { hints: false },
    }, (err, s) => (err ? reject(err) : resolve(s)));
  });
  assert.ok(!stats.hasErrors(), stats.toString('errors-only'));
  cpSync(join(app, 'webpack.html'), join(app, 'dist/index.html'));
  assert.ok(stats.toJson({ assets: true }).assets.some((a) => a.name.endsWith('.wasm')), 'the wasm is an emitted asset');
  await drive('/react-webpack/');
});
