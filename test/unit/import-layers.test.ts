/**
 * The import graph of src/ has no cycles and only points down the layers of
 * docs/architecture.md ("Layers"). A newcomer can then read the code bottom
 * up, and a change to a lower layer never needs one to a higher layer. The
 * imports are read from the source text (every `import … from`, `export …
 * from` and `import('…')` of a relative path, type-only ones included), so
 * the test needs no build and no services.
 *
 * A module is the first segment of a path under src/, without `.ts`: the
 * folder `src/relay/` and the file `src/config.ts` are the modules `relay`
 * and `config`. A new folder or top-level file must be placed in LAYERS (and
 * in the table of the docs) before this passes.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/** Lowest first; a module may import its own layer's modules (without a cycle) and lower ones. */
const LAYERS: readonly { name: string; modules: readonly string[] }[] = [
  {
    name: 'foundation',
    modules: ['errors', 'redact-url', 'schema-name', 'backoff', 'log', 'config'],
  },
  // `schema` is the old path of the migrator, a re-export until bench/ imports `migrator`.
  { name: 'store', modules: ['outbox', 'migrator'] },
  { name: 'relay core', modules: ['relay'] },
  { name: 'adapters', modules: ['db', 'broker', 'tenants', 'metrics'] },
  { name: 'serving', modules: ['http', 'runtime'] },
  { name: 'command line', modules: ['cli'] },
  { name: 'package entry points', modules: ['index', 'enqueue-entry'] },
];

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

const IMPORT_PATTERNS = [
  // `import x from './a.js'`, `import type { X } from …`, `export { x } from …`, over several lines.
  /^\s*(?:import|export)\s[^;]*?\sfrom\s*['"](\.[^'"]*)['"]/gm,
  /^\s*import\s*['"](\.[^'"]*)['"]/gm,
  /\bimport\(\s*['"](\.[^'"]*)['"]\s*\)/g,
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [relative(SRC, path)] : [];
  });
}

/** file (relative to src/, e.g. `relay/relay.ts`) → the relative paths it imports, resolved. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(join(SRC, file), 'utf8');
    const targets = IMPORT_PATTERNS.flatMap((pattern) =>
      [...text.matchAll(pattern)].map((match) =>
        normalize(join(dirname(file), match[1] ?? '')).replace(/\.js$/, '.ts'),
      ),
    );
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

function moduleOf(file: string): string {
  return file.split('/')[0]?.replace(/\.ts$/, '') ?? file;
}

function layerOf(module: string): number {
  return LAYERS.findIndex((layer) => layer.modules.includes(module));
}

/** Strongly connected components of more than one node, or with a self-edge (Tarjan). */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, index.size);
    low.set(node, index.get(node) ?? 0);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node) ?? 0, low.get(next) ?? 0));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node) ?? 0, index.get(next) ?? 0));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string | undefined;
    do {
      member = stack.pop();
      if (member === undefined) break;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || graph.get(node)?.includes(node)) found.push(component.sort());
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}

describe('the import graph of src/', () => {
  const graph = importGraph();
  const edges = [...graph].flatMap(([from, targets]) => targets.map((to) => ({ from, to })));

  it('is read from the source: known imports are found, and each resolves to a file in src/', () => {
    expect(edges).toContainEqual({ from: 'cli/main.ts', to: 'config.ts' });
    expect(edges).toContainEqual({ from: 'cli/tenants-command.ts', to: 'cli/tenants-top.ts' });
    expect(edges).toContainEqual({ from: 'index.ts', to: 'relay/relay.ts' });
    expect(edges.filter(({ to }) => !graph.has(to))).toEqual([]);
  });

  it('places every module in a layer of docs/architecture.md', () => {
    const modules = new Set([...graph.keys()].map(moduleOf));
    expect([...modules].filter((module) => layerOf(module) < 0)).toEqual([]);
  });

  it('has no cycle between files', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('has no cycle between modules, even within a layer', () => {
    const modules = new Map<string, string[]>();
    for (const { from, to } of edges) {
      const [a, b] = [moduleOf(from), moduleOf(to)];
      if (a !== b) modules.set(a, [...new Set([...(modules.get(a) ?? []), b])]);
    }
    expect(cycles(modules)).toEqual([]);
  });

  it('never imports from a higher layer', () => {
    const upward = edges
      .filter(({ from, to }) => layerOf(moduleOf(to)) > layerOf(moduleOf(from)))
      .map(
        ({ from, to }) =>
          `${from} (${LAYERS[layerOf(moduleOf(from))]?.name}) imports ${to} (${LAYERS[layerOf(moduleOf(to))]?.name})`,
      );
    expect(upward).toEqual([]);
  });
});
