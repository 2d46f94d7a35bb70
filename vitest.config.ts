import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The Windows lane's suite runs under Windows Node.js in Wine (npm run test:windows); the
    // Bacula lab's needs a real Director and Storage Daemon (npm run test:bacula).
    exclude: ['test/windows/**', 'test/bacula-lab/**', 'node_modules/**'],
    // Native agents are loaded with koffi: separate processes keep one test file's libraries
    // (and any crash) away from the others.
    pool: 'forks',
    // The agents only the tests use are built first, when missing or stale (npm install builds
    // only what ships).
    globalSetup: ['scripts/build-test-agents.mjs'],
    // Each file's temp directories are removed after its tests (test/helpers/cleanup.ts).
    setupFiles: ['test/helpers/cleanup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
