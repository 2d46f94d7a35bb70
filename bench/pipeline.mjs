/**
 * Backup pipeline benchmark: whole backup jobs (agent, bridge, SHA-256, compression, volume on
 * disk, catalog) of the Exchange sample's store, with the agent in-process and isolated, so the
 * cost of isolation shows where it matters: in a real job, not only on a discarding sink.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';

export async function pipelineCases({ scratch, root, store }) {
  const dist = (p) => import(path.join(root, 'dist', p));
  const { parseConfig } = await dist('config/load.js');
  const { loadPluginDir } = await dist('agents/registry.js');
  const { runBackup } = await dist('jobs/backup.js');
  const plugins = path.join(root, 'binding', 'build', 'Release', 'agents');
  const registry = await loadPluginDir(plugins);

  const job = async (isolation, compression) => {
    const dir = mkdtempSync(path.join(scratch, 'job-'));
    const text = [
      `plugin_dir = ${JSON.stringify(plugins)}`,
      `data_dir = ${JSON.stringify(dir)}`,
      `isolation = "${isolation}"`,
      `[jobs.bench]\nagent = "MicrosoftExchange"\ncompression = "${compression}"\noptions = { store = ${JSON.stringify(store)}, truncate_logs = "no" }`,
    ].join('\n');
    const config = parseConfig(text, path.join(dir, 'agentfd.toml'));
    try {
      const report = await runBackup({ config, registry, jobName: 'bench' });
      if (report.status !== 'committed') throw new Error(`bench job ${report.status}: ${report.errors.join('; ')}`);
      return { bytes: report.bytes, seconds: report.seconds, stored: report.storedBytes };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const cases = [];
  for (const compression of ['none', 'zstd:3']) {
    cases.push({ name: `job, ${compression}, in-process`, run: () => job('none', compression) });
    cases.push({
      name: `job, ${compression}, isolated`,
      baseline: `job, ${compression}, in-process`,
      note: 'goal: at least 85% of in-process',
      run: () => job('process', compression),
    });
  }
  return { title: 'backup pipeline (SHA-256, volume on disk)', cases };
}
