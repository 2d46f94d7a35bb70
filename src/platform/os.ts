/**
 * The one place that asks which operating system agentfd runs on. Everything that behaves
 * differently per system imports these names, so a search for them finds every such difference.
 */
export const IS_WINDOWS = process.platform === 'win32';
export const IS_LINUX = process.platform === 'linux';
/** Whether the file system treats names that differ only in case as one (Windows does). */
export const NAMES_IGNORE_CASE = IS_WINDOWS;
/**
 * Whether restores here can write confined beneath their target (Linux: confined-target.ts;
 * Windows: pinned-target.ts). Where they cannot, the host offers ABI generations 1..2 only.
 */
export const CONFINED_WRITES = IS_LINUX || IS_WINDOWS;
