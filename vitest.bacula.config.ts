import { defineConfig } from 'vitest/config';

// npm run test:bacula: agentfd serve against a real Bacula Director and Storage Daemon
// (scripts/bacula/lab.sh, on 127.0.0.1:9101-9103). One file at a time: the lab's ports are fixed.
export default defineConfig({
  test: {
    include: ['test/bacula-lab/**/*.test.ts'],
    pool: 'forks',
    // Each file's temp directories are removed after its tests (test/helpers/cleanup.ts).
    setupFiles: ['test/helpers/cleanup.ts'],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
});
