import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Native agents are loaded with koffi: separate processes keep one test file's libraries
    // (and any crash) away from the others.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
