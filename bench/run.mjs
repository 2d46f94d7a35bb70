#!/usr/bin/env node
/**
 * agentfd benchmarks: `npm run bench` (quick) or `npm run bench -- --full`. Never part of
 * `npm test`. Every case runs several times in one invocation, interleaved with its baselines, and
 * the table reports medians and ratios against a baseline measured in the same run: this machine is
 * shared and noisy, so one absolute number proves little.
 *
 * The table is printed as markdown and written to bench/results/.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bridgeCases } from './bridge.mjs';
import { pipelineCases } from './pipeline.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const full = process.argv.includes('--full');
const settings = full ? { mode: 'full', runs: 5, streamBytes: 2 * 1024 ** 3 } : { mode: 'quick', runs: 3, streamBytes: 512 * 1024 ** 2 };

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

async function main() {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'agentfd-bench-'));
  const rows = [];
  try {
    const bridge = await bridgeCases({ ...settings, scratch, root: ROOT });
    const suites = [bridge, await pipelineCases({ ...settings, scratch, root: ROOT, store: bridge.store })];
    for (const suite of suites) {
      const samples = new Map(suite.cases.map((c) => [c.name, []]));
      // Interleave the cases run by run, so a noisy moment hurts all of them alike.
      for (let run = 0; run < settings.runs; run++) {
        for (const c of suite.cases) {
          const result = await c.run();
          samples.get(c.name).push(result);
          process.stderr.write(`  ${suite.title} / ${c.name}: run ${run + 1}: ${(result.bytes / result.seconds / 1e6).toFixed(0)} MB/s\n`);
        }
      }
      const mbps = new Map([...samples].map(([name, results]) => [name, median(results.map((r) => r.bytes / r.seconds / 1e6))]));
      for (const c of suite.cases) {
        const base = c.baseline ? mbps.get(c.baseline) : null;
        rows.push([suite.title, c.name, `${mbps.get(c.name).toFixed(0)} MB/s`, base ? `${((mbps.get(c.name) / base) * 100).toFixed(0)}% of ${c.baseline}` : 'baseline', c.note ?? '']);
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const header = `# agentfd benchmarks (${settings.mode}: medians of ${settings.runs} runs, ${(settings.streamBytes / 1024 ** 2).toFixed(0)} MiB streams)\n\n` +
    `Node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), ${new Date().toISOString()}\n\n`;
  const table = [['suite', 'case', 'throughput', 'ratio', 'note'], ['---', '---', '---:', '---:', '---'], ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
  const text = `${header}${table}\n`;
  process.stdout.write(text);
  mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  const file = path.join(ROOT, 'bench', 'results', `${new Date().toISOString().replace(/[:.]/g, '-')}-${settings.mode}.md`);
  writeFileSync(file, text);
  process.stderr.write(`written to ${path.relative(ROOT, file)}\n`);
}

await main();
