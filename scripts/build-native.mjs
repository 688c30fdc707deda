#!/usr/bin/env node
/**
 * Builds the native matmul addon (native/, binding.gyp) with node-gyp; run by
 * npm on install. The addon is an accelerator, never a requirement: if the
 * build fails (no compiler, no headers, an unsupported platform) this prints
 * one line and exits 0, and glassformer runs on its WebAssembly SIMD kernel.
 *
 * GLASSFORMER_NATIVE=0 skips the build. GLASSFORMER_NATIVE_VERBOSE=1 shows the
 * compiler output.
 */
import { spawnSync } from 'node:child_process';
import console from 'node:console';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const addon = join(root, 'build', 'Release', 'glassformer_native.node');
const verbose = process.env.GLASSFORMER_NATIVE_VERBOSE === '1';

function unavailable(reason) {
  console.log(`glassformer: native kernels unavailable (${reason}); using the WebAssembly SIMD kernel`);
  process.exit(0);
}

/** node-gyp's entry script: the one npm runs scripts with, else npm's bundled copy, else a local install. */
function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  if (process.env.npm_execpath) {
    // npm_execpath is .../npm/bin/npm-cli.js; npm bundles node-gyp beside it.
    candidates.push(join(dirname(dirname(process.env.npm_execpath)), 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  const prefix = dirname(dirname(process.execPath));
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  try {
    candidates.push(createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed locally; the other candidates may still exist
  }
  return candidates.find((file) => file !== undefined && file !== '' && existsSync(file));
}

/**
 * Headers for the running Node. npm passes its `nodedir` setting through the
 * environment; without one, node-gyp downloads headers, so point it at the
 * headers installed beside this Node binary when they are there (offline builds).
 */
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

/** The line that best says what went wrong: a compiler error, else node-gyp's own error, else the first line. */
function firstError(output) {
  const lines = output.split('\n').map((line) => line.trim()).filter((line) => line.length > 0);
  const compiler = lines.find((l) => /\berror:/.test(l));
  const gyp = lines.find((l) => l.startsWith('gyp ERR! stack Error: '));
  const line = compiler ?? gyp?.slice('gyp ERR! stack Error: '.length) ?? lines[0] ?? 'no output';
  return line.replace(/^gyp ERR! /, '').slice(0, 200);
}

if (process.env.GLASSFORMER_NATIVE === '0') unavailable('GLASSFORMER_NATIVE=0');

const nodeGyp = findNodeGyp();
if (nodeGyp === undefined) unavailable('node-gyp not found');

const build = spawnSync(process.execPath, [nodeGyp, 'rebuild', ...nodedirArgs()], {
  cwd: root,
  encoding: 'utf8',
  stdio: verbose ? 'inherit' : 'pipe',
});
if (build.error) unavailable(`could not run node-gyp: ${build.error.message}`);
if (build.status !== 0) unavailable(`build failed: ${firstError(`${build.stderr ?? ''}\n${build.stdout ?? ''}`)}`);

// A library built for a different ABI or CPU fails only when loaded, so load it once here.
const check = spawnSync(process.execPath, ['-p', `require(${JSON.stringify(addon)}).isa()`], { encoding: 'utf8' });
if (check.status !== 0) unavailable(`built but failed to load: ${firstError(check.stderr ?? '')}`);
console.log(`glassformer: native kernels built (${check.stdout.trim()})`);
