/**
 * Memory: the peak RSS of the daemon plus its agent host while one stream is backed up, for a
 * stream of the pipeline's input size (quick 256 MiB, full 1 GiB) and one four times as large
 * (quick 1 GiB, full 4 GiB). none + SHA-256 through the Exchange sample, isolated (the default),
 * via the CLI in a child process like every agentfd case.
 *
 * The point is the shape, not the number: memory must not grow with the stream (buffers are
 * bounded, nothing is kept per chunk), so the large stream's peak must be within 10% of the small
 * one's, and at most 200 MiB.
 */
import { backupOnce } from './pipeline.mjs';

export function memoryCases({ ws, small, big }) {
  const make = (id, input, extra = {}) => {
    const job = ws.job(id.replace('/', '-'), { agent: 'MicrosoftExchange', compression: 'none', options: { store: input.store, truncate_logs: 'no' } });
    return {
      id,
      suite: 'memory',
      name: 'none + SHA-256, isolated',
      input,
      run: async () => {
        try {
          return await backupOnce(ws, job, input.bytes);
        } finally {
          job.reset();
        }
      },
      ...extra,
    };
  };
  return [
    make('memory/small', small),
    // Its ratio is of peak RSS, not throughput: the growth from the small stream to this one.
    make('memory/big', big, { baseline: 'memory/small', baselineLabel: 'the small stream', ratioOf: 'peakRss', note: 'goal: peak RSS <= 200 MiB and <= 1.10x the small stream' }),
  ];
}
