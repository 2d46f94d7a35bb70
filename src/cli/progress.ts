/**
 * A progress bar for long commands, on a TTY only (never in --json mode or when piped): bytes,
 * rate and, when the total is known (restore, verify), ETA. Built on cli-progress.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  update(bytes: number, files: number): void;
  stop(): void;
}

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export { human as humanBytes };

export function startProgress(enabled: boolean, label: string, totalBytes: number | null): Progress {
  if (!enabled || !process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  const started = Date.now();
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      format: (options, params, payload: { done: string; rate: string; eta: string; files: number }) =>
        `${label} ${totalBytes ? `${cliProgress.Format.BarFormat(params.progress, options)} ` : ''}${payload.done} | ${payload.rate}/s | ${payload.files} files | ETA ${payload.eta}`,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(totalBytes ?? 1, 0, { done: '0 B', rate: '0 B', eta: '-', files: 0 });
  let last = 0;
  return {
    update(bytes, files) {
      const now = Date.now();
      if (now - last < 200) return;
      last = now;
      const seconds = Math.max((now - started) / 1000, 0.001);
      const rate = bytes / seconds;
      const eta = totalBytes && rate > 0 ? `${Math.max(0, Math.round((totalBytes - bytes) / rate))}s` : '-';
      bar.update(totalBytes ? Math.min(bytes, totalBytes) : 0, { done: human(bytes), rate: human(rate), eta, files });
    },
    stop() {
      bar.stop();
    },
  };
}
