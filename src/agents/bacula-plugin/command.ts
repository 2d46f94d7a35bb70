/**
 * Bacula's plugin command strings (`Plugin = "bpipe:/@bpipe@/dump.sql:mysqldump mydb:mysql mydb"`):
 * the plugin's name is the text before the first ':', and the whole string goes to the plugin,
 * which parses the rest itself (bpipe splits at the next three ':', so its writer may hold ':').
 * Rules as bacula-fd applies them (fd_plugins.c: get_plugin_name).
 */
import { AgentfdError } from '../../errors.js';

/** Debian's layout: bacula-fd finds libbac here (its RUNPATH is /usr/lib/bacula); bpipe-fd.so needs it. */
export const DEFAULT_PRELOAD: readonly string[] = ['/usr/lib/bacula/libbac.so'];

/** The suffixes bacula-fd loads from its Plugin Directory ("bpipe-fd.so" is the plugin "bpipe"). */
export const BACULA_PLUGIN_FILE = /-fd\.(so|dll)$/i;

/** "bpipe-fd.so" -> "bpipe". */
export function baculaPluginName(fileName: string): string {
  return fileName.replace(BACULA_PLUGIN_FILE, '');
}

/** The plugin a command string names (a bare name, "bpipe", is a command of its own), or null when it names none. */
export function pluginNameOrNull(command: string): string | null {
  const colon = command.indexOf(':');
  if (colon === 0 || command.length === 0) return null;
  if (colon < 0) return /\s/.test(command) ? null : command;
  return command.slice(0, colon);
}

/** The plugin a command string names; a malformed string is an error that shows Bacula's form. */
export function pluginNameOf(command: string): string {
  const name = pluginNameOrNull(command);
  if (name === null) {
    throw new AgentfdError('E_PLUGIN_COMMAND', `malformed plugin command "${command}": it names no plugin (Bacula's form is NAME:ARGUMENTS, e.g. "bpipe:/@bpipe@/dump.sql:mysqldump mydb:mysql mydb")`);
  }
  return name;
}
