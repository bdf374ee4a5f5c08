// Prints the function names recorded in a wasm module's "name" custom section, one per line.
// Usage: node scripts/wasm-function-names.mjs path/to/module.wasm
import { readFileSync } from 'node:fs';

const bytes = readFileSync(process.argv[2]);
const module = new WebAssembly.Module(bytes);
const sections = WebAssembly.Module.customSections(module, 'name');
if (sections.length !== 1) {
  console.error('no name section: build without stripping symbols');
  process.exit(2);
}
const data = new Uint8Array(sections[0]);
let pos = 0;
const leb = () => {
  let result = 0;
  let shift = 0;
  for (;;) {
    const b = data[pos++];
    result += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return result;
    shift += 7;
  }
};
const decoder = new TextDecoder();
while (pos < data.length) {
  const id = data[pos++];
  const size = leb();
  const end = pos + size;
  if (id === 1) {
    const count = leb();
    for (let i = 0; i < count; i++) {
      leb();
      const len = leb();
      console.log(decoder.decode(data.subarray(pos, pos + len)));
      pos += len;
    }
  }
  pos = end;
}
