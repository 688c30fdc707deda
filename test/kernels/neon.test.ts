import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { REPO } from '../helpers/shared.js';

// The NEON kernels (native/gemm_neon.cc) are compiled only into arm64 builds
// of the addon. On an arm64 machine the host compiler builds the check and it
// runs natively; elsewhere Debian's AArch64 cross compiler builds it and
// qemu-aarch64 (user-mode emulation) runs it, so every entry point is checked
// against double-precision references on x86-64 too (.ci/run installs both).
const NATIVE_ARM = process.arch === 'arm64';
const COMPILER = NATIVE_ARM ? 'g++' : 'aarch64-linux-gnu-g++';
const EMULATOR = NATIVE_ARM ? undefined : 'qemu-aarch64';
const NATIVE = join(REPO, 'native');

function runs(tool: string): boolean {
  return spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0;
}

const missing = [COMPILER, EMULATOR].filter((tool): tool is string => tool !== undefined && !runs(tool));
const toolsMissing =
  missing.length === 0
    ? undefined
    : `${missing.join(' and ')} not found: apt-get install -y g++-aarch64-linux-gnu qemu-user to check the NEON kernels`;
// Outside CI a machine without the tools skips, saying why; in CI (.ci/run
// installs them) a missing tool fails the test instead of passing it unrun.
const skip = process.env.CI ? false : toolsMissing;

/** Runs an AArch64 program: under the emulator (with its options) when there is one. */
function execute(program: string, args: string[], emulatorOptions: string[] = []): SpawnSyncReturns<string> {
  const options = { encoding: 'utf8' as const, timeout: 300_000 };
  return EMULATOR ? spawnSync(EMULATOR, [...emulatorOptions, program, ...args], options) : spawnSync(program, args, options);
}

function compile(args: string[]): void {
  const build = spawnSync(COMPILER, ['-std=c++17', '-Wall', '-Wextra', ...args], { encoding: 'utf8' });
  assert.equal(build.status, 0, `${COMPILER} failed:\n${build.stderr}`);
}

test('NEON kernels match double-precision references on every entry point and shape', { skip }, async () => {
  assert.equal(toolsMissing, undefined, toolsMissing);
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-neon-'));
  try {
    const program = join(dir, 'neon_check');
    // Static, so the emulator needs no AArch64 C library.
    const linking = EMULATOR ? ['-static'] : [];
    compile(['-O2', ...linking, '-Werror', join(NATIVE, 'gemm_neon.cc'), join(NATIVE, 'check', 'neon_check.cc'), '-o', program]);
    const run = execute(program, []);
    assert.equal(run.status, 0, `neon_check failed:\n${run.stdout}${run.stderr}`);
    const passed = /neon_check: (\d+) cases passed \(neon-dotprod (checked|not checked)/.exec(run.stdout);
    assert.ok(passed, `no summary line in:\n${run.stdout}`);
    // Shapes x weight kinds x column splits of every entry point: thousands.
    assert.ok(Number(passed[1]) > 5000, run.stdout);
    if (EMULATOR) {
      // qemu's default CPU ("max") has SDOT, so the SDOT product was checked
      // too; a Cortex-A57 (ARMv8.0) has not, and the CPU check must say so.
      assert.equal(passed[2], 'checked', run.stdout);
      assert.equal(execute(program, ['--dotprod'], ['-cpu', 'cortex-a57']).stdout.trim(), 'neon_dotprod_supported: no');
      assert.equal(execute(program, ['--dotprod']).stdout.trim(), 'neon_dotprod_supported: yes');
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** The addon's sources for an arm64 build: binding.gyp's list less the x86-only files. */
function arm64Sources(): string[] {
  const gyp = readFileSync(join(REPO, 'binding.gyp'), 'utf8');
  const named = new Set(gyp.match(/native\/\w+\.cc/g) ?? []);
  return [...named].filter((file) => !file.includes('avx')).map((file) => join(REPO, file));
}

/** Node's C headers installed beside this Node binary (node_api.h), if they are. */
function nodeHeaders(): string | undefined {
  const include = join(dirname(dirname(process.execPath)), 'include', 'node');
  return existsSync(join(include, 'node_api.h')) ? include : undefined;
}

test('the whole addon compiles for arm64 with the NEON variant', { skip }, async () => {
  assert.equal(toolsMissing, undefined, toolsMissing);
  const headers = nodeHeaders();
  assert.ok(headers, `Node's headers (include/node/node_api.h) are not installed beside ${process.execPath}`);
  const sources = arm64Sources();
  assert.ok(sources.some((file) => file.endsWith('gemm_neon.cc')) && sources.some((file) => file.endsWith('addon.cc')), sources.join(' '));
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-neon-addon-'));
  try {
    const addon = join(dir, 'glassformer_native.node');
    compile(['-O2', '-shared', '-fPIC', '-DNAPI_VERSION=8', `-I${headers}`, ...sources, '-o', addon]);
    assert.ok(existsSync(addon));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
