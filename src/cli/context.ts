/**
 * What most commands start from: the configuration (from --config or the usual places) and the
 * plugin directory (from --plugin-dir, else the configuration).
 */
import path from 'node:path';
import { loadPluginDir, type AgentRegistry } from '../agents/registry.js';
import { loadConfig, resolveConfigPath, type AgentfdConfig } from '../config/load.js';

export interface ConfigOptions {
  config?: string;
  pluginDir?: string;
  /** Bacula's Plugin Directory (its *-fd.so files), overriding [bacula] plugin_dir. */
  baculaPluginDir?: string;
}

export function configFromOptions(options: ConfigOptions): AgentfdConfig {
  const config = loadConfig(resolveConfigPath(options.config));
  if (options.pluginDir) config.pluginDir = path.resolve(options.pluginDir);
  if (options.baculaPluginDir) config.bacula.pluginDir = path.resolve(options.baculaPluginDir);
  return config;
}

/** The plugin directory's agents, probed in a child process unless isolation = "none". */
export function registryFor(config: AgentfdConfig): Promise<AgentRegistry> {
  return loadPluginDir(config.pluginDir, {
    isolated: config.isolation.mode === 'process',
    baculaPluginDir: config.bacula.pluginDir,
    preload: config.bacula.preload,
  });
}
