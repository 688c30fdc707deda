import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { REPO } from '../helpers/shared.js';

const CHROMIUM = '/usr/bin/chromium';
const DIST = join(REPO, 'dist');

/**
 * Serves dist/ on the loopback address. Under /isolated/ the responses carry
 * the headers that make a page cross-origin isolated (COOP same-origin, COEP
 * require-corp), which browsers require before they allow SharedArrayBuffer
 * and so the kernel's worker threads; under /plain/ they do not.
 */
function serveDist(): Promise<Server> {
  const types: Record<string, string> = { '.js': 'text/javascript', '.html': 'text/html' };
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const [, mode, ...rest] = url.pathname.split('/');
    const path = normalize(join(DIST, ...rest));
    const headers: Record<string, string> = { 'content-type': types[extname(path)] ?? 'application/octet-stream' };
    if (mode === 'isolated') Object.assign(headers, { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' });
    const page = rest.join('/') === 'index.html';
    if (!page && !path.startsWith(DIST + '/')) {
      response.writeHead(404).end();
      return;
    }
    (page ? Promise.resolve('<!doctype html><title>wasm kernel</title>') : readFile(path)).then(
      (body) => response.writeHead(200, headers).end(body),
      () => response.writeHead(404).end(),
    );
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

interface PageResult {
  name: string;
  isolated: boolean;
  maxThreads: number;
  // Per thread count, the largest |C - reference| / (Σ|a·b| + tiny) over every shape.
  worstError: Record<string, number>;
  workerParts: number;
  // Shapes whose product from the resident weight (prepack, gemmPacked) differed from gemm's in any bit.
  residentMismatches: string[];
  residentBytes: number;
}

/** In the page: the kernel against the reference on a few shapes, at 1 thread and at every thread the page allows. */
async function checkInPage(): Promise<PageResult> {
  const { createWasmKernel } = await import(`${location.pathname.replace('index.html', '')}src/kernels/wasm/kernel.js`);
  const { referenceMatmul } = await import(`${location.pathname.replace('index.html', '')}src/kernels/reference.js`);
  const kernel = await createWasmKernel();
  for (let tries = 0; kernel.readyWorkers() < kernel.maxThreads - 1 && tries < 500; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const shapes = [[1, 3072, 768, true], [3, 65, 129, false], [129, 600, 129, true], [128, 768, 768, true], [700, 65, 129, false]] as const;
  const worstError: Record<string, number> = {};
  const residentMismatches: string[] = [];
  for (const threads of [1, kernel.maxThreads]) {
    kernel.setThreads(threads);
    let worst = 0;
    for (const [m, n, k, transB] of shapes) {
      const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i * 0.37));
      const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i * 0.11));
      const c = new Float32Array(m * n);
      const expected = new Float32Array(m * n);
      const magnitude = new Float32Array(m * n);
      kernel.gemm(a, 0, b, 0, c, 0, m, n, k, transB);
      referenceMatmul.gemm(a, 0, b, 0, expected, 0, m, n, k, transB);
      referenceMatmul.gemm(a.map(Math.abs), 0, b.map(Math.abs), 0, magnitude, 0, m, n, k, transB);
      for (let e = 0; e < m * n; e++) worst = Math.max(worst, Math.abs(c[e] - expected[e]) / (magnitude[e] + 1e-30));
      const kept = new Float32Array(m * n);
      kernel.gemmPacked(a, 0, kernel.prepack(b, 0, n, k, transB), kept, 0, m);
      if (kept.some((v, e) => !Object.is(v, c[e]))) residentMismatches.push(`${m}×${n}×${k} transB=${transB}, ${threads} thread(s)`);
    }
    worstError[threads] = worst;
  }
  return {
    name: kernel.name, isolated: crossOriginIsolated, maxThreads: kernel.maxThreads, worstError, workerParts: kernel.workerParts(),
    residentMismatches, residentBytes: kernel.residentBytes(),
  };
}

let server: Server;
let origin: string;
before(async () => {
  server = await serveDist();
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

async function runInChromium(mode: 'isolated' | 'plain'): Promise<PageResult> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium)`);
  const profile = await mkdtemp(join(tmpdir(), 'glassformer-wasm-browser-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const tab = await context.newPage();
    const outside: string[] = [];
    tab.on('request', (r) => void (r.url().startsWith(origin) || outside.push(r.url())));
    const errors: string[] = [];
    tab.on('pageerror', (e) => void errors.push(e.message));
    await tab.goto(`${origin}/${mode}/index.html`);
    const result = await tab.evaluate(checkInPage);
    assert.deepEqual(errors, []);
    assert.deepEqual(outside, [], 'the kernel must not fetch anything');
    return result;
  } finally {
    await context.close();
  }
}

test('in headless Chromium, cross-origin isolated, the kernel uses relaxed SIMD and worker threads, agrees with the reference, and resident weights give its bits', async () => {
  const result = await runInChromium('isolated');
  assert.equal(result.isolated, true);
  assert.equal(result.name, 'wasm-relaxed-simd');
  assert.ok(result.maxThreads >= 2, `only ${result.maxThreads} thread(s) in an isolated page`);
  assert.ok(result.workerParts > 0, 'no part ran on a Web Worker');
  for (const [threads, error] of Object.entries(result.worstError)) assert.ok(error < 1e-5, `${threads} thread(s): relative error ${error}`);
  assert.deepEqual(result.residentMismatches, [], 'products from resident weights must have gemm\'s bits');
  assert.ok(result.residentBytes > 0);
});

test('in headless Chromium without isolation, the kernel runs on one thread, agrees with the reference, and resident weights give its bits', async () => {
  const result = await runInChromium('plain');
  assert.equal(result.isolated, false);
  assert.equal(result.maxThreads, 1);
  assert.ok(result.worstError[1] < 1e-5, `relative error ${result.worstError[1]}`);
  assert.deepEqual(result.residentMismatches, [], 'products from resident weights must have gemm\'s bits');
  assert.ok(result.residentBytes > 0);
});
