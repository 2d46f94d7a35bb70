/** The catalog writer thread (see file-writer.ts): inserts batches of file rows, in order. */
import { parentPort, workerData } from 'node:worker_threads';
import { messageOf } from '../errors.js';
import { Catalog, type FileRows } from './catalog.js';

const catalog = Catalog.open((workerData as { dataDir: string }).dataDir);

parentPort!.on('message', (task: { id: number; rows: string }) => {
  try {
    catalog.insertRows(JSON.parse(task.rows) as FileRows);
    parentPort!.postMessage({ id: task.id });
  } catch (error) {
    parentPort!.postMessage({ id: task.id, error: messageOf(error) });
  }
});
