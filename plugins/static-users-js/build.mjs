// Builds this plugin into a WebAssembly component with componentize-js.
//
//   node build.mjs [--http] [--source FILE] [--wit DIR] [--out FILE]
//
// The JS engine (StarlingMonkey) is a WASI preview1 program; its default
// preview1 adapter imports wasi:filesystem, which Portcullis links only
// inert (nothing behind it). The adapter shipped here is wasmtime's "proxy" adapter (no filesystem, no
// environment), so the component imports only the host interface and
// wasi:cli/clocks/io/random. http and fetch-event are disabled: a plugin
// does no I/O, unless built with --http, which enables `fetch` (the
// component then imports wasi:http/outgoing-handler and loads only for a
// plugin granted `http`).
//
// componentize-js takes one module: the source and what it imports from
// npm packages (portcullis-sdk) are bundled first with rolldown; the WIT
// imports (`portcullis:authenticator/...`) stay imports.
import { componentize } from '@bytecodealliance/componentize-js';
import { build } from 'rolldown';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    source: { type: 'string', default: resolve(here, 'src/plugin.js') },
    wit: { type: 'string', default: resolve(here, 'wit') },
    out: { type: 'string', default: resolve(here, 'plugin.wasm') },
    http: { type: 'boolean', default: false },
  },
});

const started = Date.now();
const bundled = await build({
  input: resolve(values.source),
  external: [/^portcullis:authenticator\//],
  platform: 'neutral',
  // Sources outside this directory (other JS plugins) find portcullis-sdk
  // in this one's node_modules.
  resolve: { modules: ['node_modules', resolve(here, 'node_modules')] },
  write: false,
  output: { format: 'esm' },
  logLevel: 'warn',
});
const scratch = await mkdtemp(join(tmpdir(), 'portcullis-js-'));
const source = join(scratch, 'plugin.js');
await writeFile(source, bundled.output[0].code);
const { component } = await componentize({
  sourcePath: source,
  witPath: resolve(values.wit),
  worldName: 'authenticator',
  disableFeatures: values.http ? ['fetch-event'] : ['http', 'fetch-event'],
  preview2Adapter: resolve(here, 'wasi_snapshot_preview1.proxy.wasm'),
}).finally(() => rm(scratch, { recursive: true, force: true }));
await mkdir(dirname(resolve(values.out)), { recursive: true });
await writeFile(values.out, component);
console.log(`${values.out}: ${component.length} bytes in ${Date.now() - started} ms`);
