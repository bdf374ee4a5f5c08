// The TypeScript declarations (dist/index.d.ts, dist/envelope.d.ts) type-check a consumer of the
// whole public API through the package's exports map, and reject misuse.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const root = fileURLToPath(new URL('../../', import.meta.url));

test('tsc --noEmit accepts tests/types/consumer.ts', () => {
  let out = '';
  try {
    out = execFileSync(`${root}node_modules/.bin/tsc`, ['-p', 'tests/types/tsconfig.json'], { cwd: root, encoding: 'utf8' });
  } catch (e) {
    assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`);
  }
  assert.equal(out.trim(), '');
});
