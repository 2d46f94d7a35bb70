/** Catalog commands: `agentfd jobs`, `agentfd files ID`, `agentfd verify --job-id ID`, `agentfd scan VOLUME...`. */
import type { Command } from 'commander';
import { Catalog } from '../../catalog/catalog.js';
import { AgentfdError } from '../../errors.js';
import { runScan } from '../../jobs/scan.js';
import { runVerify } from '../../jobs/verify.js';
import { trustedSigners } from '../../jobs/signatures.js';
import { configFromOptions, type ConfigOptions } from '../context.js';
import { humanBytes } from '../progress.js';
import { printJson, reportFailure, table, type CommandIo } from '../output.js';
import { collect, secretsFrom, withSecretOptions, type SecretOptions } from '../secrets.js';
import { parseJobId } from './restore.js';
import { encodeName, hasRawBytes, shownName } from '../../platform/byte-names.js';

interface CatalogOptions extends ConfigOptions, SecretOptions {
  json?: boolean;
  trustSigner?: string[];
  allowUntrustedSigner?: boolean;
}

function withCatalog<T>(options: CatalogOptions, body: (catalog: Catalog) => T): T {
  const config = configFromOptions(options);
  const catalog = Catalog.open(config.dataDir);
  try {
    return body(catalog);
  } finally {
    catalog.close();
  }
}

const nsToIso = (ns: string | null) => (ns ? new Date(Number(BigInt(ns) / 1_000_000n)).toISOString() : null);

export function jobsCommand(io: CommandIo, options: CatalogOptions): number {
  try {
    return withCatalog(options, (catalog) => {
      const jobs = catalog.jobs().map((j) => ({
        jobId: j.id, name: j.name, agent: j.agent, level: j.level, status: j.status, started: nsToIso(j.started_ns), ended: nsToIso(j.ended_ns),
        files: j.files, bytes: j.bytes, storedBytes: j.stored_bytes, compression: j.compression, cipher: j.cipher, signer: j.signer, signerTrusted: j.signer === null ? null : j.signer_trusted === 1, referenceJob: j.reference_job, error: j.error,
      }));
      if (options.json) printJson(io, { status: 'ok', jobs });
      else if (jobs.length === 0) io.out('No jobs in the catalog.');
      else {
        io.out(table([['ID', 'NAME', 'AGENT', 'LEVEL', 'BASED ON', 'STATUS', 'STARTED', 'FILES', 'BYTES'], ...jobs.map((j) => [String(j.jobId), j.name, j.agent, j.level, j.referenceJob === null ? '-' : `job ${j.referenceJob}`, j.status, j.started ?? '-', String(j.files), humanBytes(j.bytes)])]));
      }
      return 0;
    });
  } catch (error) {
    return reportFailure(io, Boolean(options.json), error);
  }
}

export function filesCommand(io: CommandIo, id: string, options: CatalogOptions): number {
  try {
    const jobId = parseJobId(id);
    return withCatalog(options, (catalog) => {
      const job = catalog.job(jobId);
      if (!job) throw new AgentfdError('E_UNKNOWN_JOB', `there is no job ${jobId} in the catalog ${catalog.file}; agentfd jobs lists them`);
      const files = catalog.files(jobId).map((f) => ({
        // Names are bytes: one that is not UTF-8 is shown with \xNN (and given as hex too, exactly).
        path: shownName(f.path), ...(hasRawBytes(f.path) ? { pathHex: encodeName(f.path).toString('hex') } : {}), kind: f.kind, mode: f.mode, size: f.size, seen: f.seen === 1, status: f.status, error: f.error, renamedFrom: f.renamed_from === null ? null : shownName(f.renamed_from), winAttributes: f.win_attributes, agent: f.agent, agentVersion: f.agent_version, agentAbi: f.agent_abi,
        streams: catalog.streams(f.id).map((s) => ({ index: s.stream_index, name: s.name, type: s.type, rawRestorable: s.raw_restorable === 1, bytes: s.bytes, sha256: s.sha256 })),
      }));
      if (options.json) printJson(io, { status: 'ok', jobId, files });
      else io.out(table([['PATH', 'KIND', 'SIZE', 'AGENT', 'STATUS'], ...files.map((f) => [f.path, f.seen ? `${f.kind} (seen)` : f.kind, f.size === null ? '-' : String(f.size), f.agent, f.renamedFrom ? `${f.status} (renamed from ${f.renamedFrom})` : f.status])]));
      return 0;
    });
  } catch (error) {
    return reportFailure(io, Boolean(options.json), error);
  }
}

export async function verifyCommand(io: CommandIo, options: CatalogOptions & { jobId: string }): Promise<number> {
  try {
    const jobId = parseJobId(options.jobId);
    const config = configFromOptions(options);
    const catalog = Catalog.open(config.dataDir);
    try {
      const report = await runVerify({ catalog, jobId, secrets: secretsFrom(options), allowUntrustedSigner: Boolean(options.allowUntrustedSigner) });
      if (options.json) printJson(io, { ...report, status: report.status === 'ok' ? 'ok' : 'failed', verify: report.status });
      else if (report.status === 'ok') {
        for (const warning of report.warnings) io.err(`agentfd: warning: ${warning}`);
        io.out(`job ${jobId}: OK: ${report.files} files, ${report.streams} streams, ${humanBytes(report.bytes)}; ${report.volumeRecords} records in ${report.volumes.length} volume(s) checked; signature ${report.signature}`);
      } else io.err(`agentfd: job ${jobId}: BAD: ${report.error}`);
      return report.status === 'ok' ? 0 : 1;
    } finally {
      catalog.close();
    }
  } catch (error) {
    return reportFailure(io, Boolean(options.json), error);
  }
}

export async function scanCommand(io: CommandIo, volumes: string[], options: CatalogOptions): Promise<number> {
  try {
    const config = configFromOptions(options);
    const catalog = Catalog.open(config.dataDir);
    try {
      const trusted = trustedSigners(
        [...config.trustedSigners, ...(options.trustSigner ?? [])],
        Object.fromEntries(Object.entries(config.jobs).map(([name, job]) => [name, job.sign_with])),
      );
      const report = await runScan({ catalog, volumes, secrets: secretsFrom(options), trusted });
      const ok = report.errors.length === 0;
      if (options.json) printJson(io, { status: ok ? 'ok' : 'failed', jobId: report.added[0]?.jobId ?? null, ...report });
      else {
        for (const a of report.added) io.out(`added job ${a.jobId} (${a.name}): ${a.status}, ${a.files} files`);
        if (report.present.length > 0) io.out(`already in the catalog: job ${report.present.join(', ')}`);
        for (const w of report.warnings) io.err(`warning: ${w}`);
        for (const e of report.errors) io.err(`error: ${e}`);
      }
      return ok ? 0 : 1;
    } finally {
      catalog.close();
    }
  } catch (error) {
    return reportFailure(io, Boolean(options.json), error);
  }
}

function common(command: Command): Command {
  return command
    .option('-c, --config <file>', 'configuration file (default: $AGENTFD_CONFIG, else ./agentfd.toml)')
    .option('--json', 'print one JSON object');
}

export function registerCatalogCommands(program: Command, io: CommandIo, setExit: (code: number) => void): void {
  common(program.command('jobs').description('list the jobs of the catalog')).action((o: CatalogOptions) => setExit(jobsCommand(io, o)));
  common(program.command('files').description('list the files of a job, with the agent that saved each').argument('<id>', 'job id'))
    .action((id: string, o: CatalogOptions) => setExit(filesCommand(io, id, o)));
  common(
    withSecretOptions(program.command('verify'))
      .description('re-read a job from its volumes and check every checksum, tag, digest and the signature')
      .requiredOption('--job-id <id>', 'the job to verify')
      .option('--allow-untrusted-signer', 'accept a job that scan found signed by a key not trusted (reported as signature untrusted)'),
  ).action(async (o: CatalogOptions & { jobId: string }) => setExit(await verifyCommand(io, o)));
  common(
    withSecretOptions(program.command('scan'))
      .description('rebuild the catalog from volumes alone')
      .argument('<volume...>', 'volume files (.afv)')
      .option('--trust-signer <file.pub>', 'accept signatures by the signing key of this public key file (repeatable; also trusted_signers and each job\'s sign_with)', collect),
  ).action(async (volumes: string[], o: CatalogOptions) => setExit(await scanCommand(io, volumes, o)));
}
