// Generates types/ (the TypeScript declarations of the WIT world
// portcullis:authenticator/authenticator@0.1.0, as `jco guest-types`
// writes them) from the repository's wit/ directory.
//
//   node scripts/generate-types.mjs [--wit DIR] [--out DIR]
//
// The generated files are committed; a test regenerates them into a
// temporary directory and compares, so they stay true to the WIT.
//
// Why not `jco guest-types`: jco-transpile runs its WIT parser as a
// WASI component on @bytecodealliance/preview2-shim, and shim 0.26 no
// longer preopens any directory by default, so the jco 1.35 CLI cannot
// read the WIT ("No such file or directory (os error 44)"). This script
// calls the same generator after preopening only the WIT directory.
import { createRequire } from 'node:module';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const { values } = parseArgs({
  options: {
    wit: { type: 'string', default: resolve(here, '../../wit/v0.1.0') },
    out: { type: 'string', default: resolve(here, 'types') },
  },
});
const wit = resolve(values.wit);
const out = resolve(values.out);

// The shim instance jco-transpile imports (its own, possibly nested, copy).
const transpile = createRequire(join(here, 'package.json')).resolve('@bytecodealliance/jco-transpile');
const shim = createRequire(transpile).resolve('@bytecodealliance/preview2-shim/filesystem');
const { _setPreopens } = await import(pathToFileURL(shim));
_setPreopens({ [wit]: wit });
const { generateGuestTypes } = await import(pathToFileURL(transpile));

const files = await generateGuestTypes(join(wit, 'authenticator.wit'), {
  worldName: 'authenticator',
  outDir: `${out}/`,
});
await rm(out, { recursive: true, force: true });
for (const [path, bytes] of Object.entries(files)) {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
  console.log(`wrote ${relative(process.cwd(), path)}`);
}
