// Every test file's setup (vitest setupFiles): its temp directories go once its tests are done.
import { afterAll } from 'vitest';
import { removeTempDirs } from './native.js';

afterAll(() => removeTempDirs());
