#!/usr/bin/env node
/**
 * The layers of src/, low to high, and the imports that break them: `node scripts/check-layers.mjs`
 * prints every import from a module to one of a higher layer (and every module no layer names),
 * and exits 1 if there is one. A module may import its own layer and the layers below; circles
 * inside a layer are scripts/check-imports.mjs's to find. ARCHITECTURE.md draws the same order.
 *
 * A layer is a list of names: a folder of src/ ("volume"), a subfolder ("agents/native"), or one
 * module without its extension ("agents/types"). The most specific name wins.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { importGraph } from './check-imports.mjs';

export const LAYERS = [
  ['platform', 'errors', 'version', 'compiled-script'], // the system, and what every layer says
  ['agents/types', 'volume', 'crypto'], // the agents' vocabulary; the volume format; keys and seals
  ['catalog', 'pipeline'], // the SQLite catalog; codecs, workers, record payloads
  ['sink'], // one job's session in the volumes
  ['agents/agent', 'agents/session', 'agents/fileset'], // the contract every kind of agent serves
  ['agents/native', 'agents/filesystem', 'agents/bacula-plugin'], // the kinds of agents
  ['agents/load', 'agents/plugin-dir', 'agents/descriptor', 'agents/probe', 'agents/probe-main', 'agents/registry'], // finding and loading them
  ['config', 'bridge'], // the configuration file; native agents as async iterators
  ['host'], // isolated agent host processes
  ['jobs'], // backup, restore, verify, scan, estimate
  ['bacula-fd'], // agentfd serve
  ['cli'], // the command line
];

/** The layer (index into LAYERS) of a module path like 'src/agents/native/abi.ts', or -1. */
export function layerOf(file) {
  const name = file.replace(/^src\//, '').replace(/\.ts$/, '');
  let best = { layer: -1, length: -1 };
  LAYERS.forEach((names, layer) => {
    for (const prefix of names) {
      if ((name === prefix || name.startsWith(`${prefix}/`)) && prefix.length > best.length) best = { layer, length: prefix.length };
    }
  });
  return best.layer;
}

/** Every module without a layer, and every import that points up: { from, to, fromLayer, toLayer }. */
export function layerProblems(graph) {
  const unplaced = [...graph.keys()].filter((file) => layerOf(file) === -1);
  const upward = [];
  for (const [from, edges] of graph) {
    for (const { to } of edges) {
      const [fromLayer, toLayer] = [layerOf(from), layerOf(to)];
      if (fromLayer !== -1 && toLayer > fromLayer) upward.push({ from, to, fromLayer, toLayer });
    }
  }
  return { unplaced, upward };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const graph = importGraph('src', root);
  const { unplaced, upward } = layerProblems(graph);
  for (const file of unplaced) console.log(`${file}: in no layer; add its folder to LAYERS in scripts/check-layers.mjs`);
  for (const e of upward) console.log(`${e.from} (layer ${e.fromLayer}: ${LAYERS[e.fromLayer].join(', ')}) imports ${e.to} (layer ${e.toLayer}: ${LAYERS[e.toLayer].join(', ')}), a higher layer`);
  console.log(`${graph.size} modules in ${LAYERS.length} layers: ${unplaced.length + upward.length === 0 ? 'every import points down' : `${upward.length} upward import(s), ${unplaced.length} module(s) in no layer`}`);
  process.exitCode = unplaced.length + upward.length === 0 ? 0 : 1;
}
