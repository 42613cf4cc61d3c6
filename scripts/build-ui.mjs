// Bundles the dashboard (ui/) into dist/ui: one minified script and one stylesheet, named after a
// hash of their content so that a browser never keeps a stale bundle, and the page that loads them.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist', 'ui');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const result = await build({
  entryPoints: [path.join(root, 'ui', 'src', 'main.tsx')],
  bundle: true,
  minify: true,
  sourcemap: false,
  format: 'esm',
  target: ['es2020'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: path.join(out, 'assets'),
  entryNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
  tsconfig: path.join(root, 'ui', 'tsconfig.json'),
});

const outputs = Object.keys(result.metafile.outputs).map((file) => path.relative(out, path.resolve(root, file)));
const script = outputs.find((f) => f.endsWith('.js'));
const style = outputs.find((f) => f.endsWith('.css'));
if (!script || !style) throw new Error(`the bundle lacks a script or a stylesheet: ${outputs.join(', ')}`);

const page = readFileSync(path.join(root, 'ui', 'index.html'), 'utf8')
  .replace('%STYLE%', `/ui/${style.split(path.sep).join('/')}`)
  .replace('%SCRIPT%', `/ui/${script.split(path.sep).join('/')}`);
writeFileSync(path.join(out, 'index.html'), page);
console.log(`dashboard: dist/ui/${script}, dist/ui/${style}`);
