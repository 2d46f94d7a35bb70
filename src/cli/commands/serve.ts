/** `agentfd serve`: answer a Bacula Director as its File Daemon (bacula-fd), until stopped. */
import type { Command } from 'commander';
import { FileDaemonServer } from '../../bacula-fd/director/server.js';
import { AgentfdError } from '../../errors.js';
import { zlibMissing } from '../../platform/zlib.js';
import { pluginAgents } from '../../bacula-fd/transfer/plugin-agents.js';
import { loadTlsSettings } from '../../bacula-fd/wire/tls.js';
import { configFromOptions, registryFor, type ConfigOptions } from '../context.js';
import { reportFailure, type CommandIo } from '../output.js';

interface ServeOptions extends ConfigOptions {
  port?: string;
  address?: string;
}

export async function serveCommand(io: CommandIo, options: ServeOptions): Promise<number> {
  try {
    const config = configFromOptions(options);
    if (!config.serve) {
      throw new AgentfdError(
        'E_CONFIG',
        `${config.file ?? 'the configuration'} has no [serve] section. Add one with the Client's name and the Director that may connect:\n` +
          '  [serve]\n  name = "agentfd-fd"        # the Client resource\'s Name\n  port = 9102\n  [[serve.directors]]\n  name = "bacula-dir"\n  password = "..."          # the Client resource\'s Password',
      );
    }
    const serve = config.serve;
    if (serve.gzipLikeBaculaFd && zlibMissing()) {
      throw new AgentfdError(
        'E_CONFIG',
        `[serve] gzip_like_bacula_fd = true needs the system's zlib, the library bacula-fd compresses with, and ${zlibMissing()}. ` +
          `Install zlib (Debian: zlib1g), or on Windows set AGENTFD_ZLIB_LIBRARY to a zlib1.dll (a Windows bacula-fd installs one beside bacula-fd.exe); ` +
          'or remove the setting: GZIP is then compressed with Node\'s own zlib, which restores the same but whose sizes differ from bacula-fd\'s by about 1%.',
      );
    }
    const tls = serve.tls ? loadTlsSettings(serve.tls) : null;
    // The agents of the plugin directory (and Bacula's plugins), for FileSets' Plugin lines.
    const registry = await registryFor(config);
    for (const refused of registry.refused) io.err(`warning: ${refused.reason}`);
    const server = new FileDaemonServer({
      plugins: pluginAgents(config, registry),
      name: serve.name,
      address: options.address ?? serve.address,
      port: options.port !== undefined ? Number(options.port) : serve.port,
      directors: serve.directors,
      maxJobs: serve.maxJobs,
      heartbeatMs: serve.heartbeatMs,
      authTimeoutMs: serve.authTimeoutMs,
      maxUnauthenticated: serve.maxUnauthenticated,
      authFailureDelayMs: serve.authFailureDelayMs,
      maxBandwidthPerJob: serve.maxBandwidthPerJob,
      gzipLikeBaculaFd: serve.gzipLikeBaculaFd,
      workingDir: config.dataDir,
      tls,
      log: (level, message) => (level === 'info' ? io.out(message) : io.err(`${level}: ${message}`)),
    });
    const port = await server.listen();
    io.out(`agentfd serve: File Daemon "${serve.name}" listening on ${options.address ?? serve.address}:${port} for Director${serve.directors.length > 1 ? 's' : ''} ${serve.directors.map((d) => d.name).join(', ')}${tls ? `, TLS ${tls.need === 2 ? 'required' : 'enabled'} (${tls.certificateFile})` : ''}`);
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    io.out(`agentfd serve: ${signal}: stopping the running jobs and shutting down`);
    await server.shutdown(signal);
    // Whatever a stopped job still holds (a file being read, a run script's child) must not keep
    // the process: bacula-fd is gone within 2 s of SIGTERM, and so is serve.
    setTimeout(() => process.exit(process.exitCode ?? 0), 200).unref();
    return 0;
  } catch (error) {
    return reportFailure(io, false, error);
  }
}

export function registerServeCommand(program: Command, io: CommandIo, setExit: (code: number) => void): void {
  program
    .command('serve')
    .description("serve a Bacula Director as its File Daemon (a drop-in bacula-fd): [serve] in the configuration names the Client and its Directors")
    .option('-c, --config <file>', 'configuration file (default: $AGENTFD_CONFIG, else ./agentfd.toml)')
    .option('--address <address>', 'listen on this address (default: serve.address)')
    .option('--port <port>', 'listen on this port (default: serve.port, 9102)')
    .action(async (options: ServeOptions) => setExit(await serveCommand(io, options)));
}
