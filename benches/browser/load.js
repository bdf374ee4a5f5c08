// load() in a fresh page, split: the wasm (fetch, compile and instantiate, with the key set given
// inline so nothing else is fetched) and the key-set fetch on its own. The runner opens a new page
// for every sample, so no compiled module is reused.
const t0 = performance.now();
const { load } = await import('/fieldseal/index.js');
const t1 = performance.now();
const keys = await (await fetch('/v1/keys', { cache: 'no-store' })).json();
const t2 = performance.now();
await load({ keys, poolSize: 0 });
const t3 = performance.now();
const keysAgain = performance.now();
await (await fetch('/v1/keys', { cache: 'no-store' })).text();
const t4 = performance.now();
window.loadResult = {
  importJsMs: t1 - t0,
  firstKeysFetchMs: t2 - t1,
  wasmInstantiateAndParseMs: t3 - t2,
  keysFetchMs: t4 - keysAgain,
};
document.querySelector('#out').textContent = JSON.stringify(window.loadResult, null, 2);
