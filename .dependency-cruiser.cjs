/**
 * The layer rule of sidecarless, checked by `npm run lint:layers` (dependency-cruiser) and so by `npm run lint`.
 * The layers and what each may import are described in docs/ARCHITECTURE.md.
 *
 * - No cycles between modules of src/, type-only imports included: a type-only cycle is harmless at run time, but
 *   it still ties two modules together (neither can be read, moved or tested without the other).
 * - A module in a layer folder may import only from its own folder or from folders of a LOWER layer. Two folders
 *   of the same layer (pickers/ and resolvers/) do not import each other, and the three remote resolvers
 *   (resolvers/dns, resolvers/consul, resolvers/etcd) do not import each other (they share resolvers/ itself).
 * - The entry points sit above every layer: src/index.ts, src/extend.ts and src/zookeeper.ts (`sidecarless/zookeeper`)
 *   may import any layer, the exporters
 *   (src/exporters/, the `sidecarless/prometheus` and `sidecarless/opentelemetry` entries) any layer below them.
 *   No layer imports an entry point (nor the package by its own name).
 *
 * To add a folder to src/: add it to LAYERS below, at its place in the order (the rule layer-folder-known fails
 * until then).
 */

/** src/ folders, bottom to top; folders in one inner array share a layer. */
const LAYERS = [
  ['common'],
  ['metrics'],
  ['pickers', 'resolvers'],
  ['subchannel'],
  ['balancer'],
  ['health'],
  ['routing'],
  ['request'],
  ['cluster'],
  ['client'],
  ['exporters'],
];

/** The package entry points (files directly in src/), above every layer. */
const ENTRY_POINTS = '^src/(index|extend|zookeeper)\\.ts$';

/** Resolver implementations that must stay independent of each other. */
const RESOLVER_IMPLEMENTATIONS = ['dns', 'consul', 'etcd', 'kubernetes', 'zookeeper'];

const layerRules = LAYERS.flatMap((layer, rank) =>
  layer.map((folder) => {
    // Everything at this rank or above, except the folder itself.
    const forbidden = LAYERS.slice(rank)
      .flat()
      .filter((other) => other !== folder);
    const below = LAYERS.slice(0, rank).flat();
    return {
      name: `layer-${folder}`,
      severity: 'error',
      comment:
        `src/${folder}/ (layer ${rank + 1}) may import only from src/${folder}/` +
        (below.length > 0 ? ` and the layers below it: ${below.join(', ')}` : '') +
        '; see docs/ARCHITECTURE.md.',
      from: { path: `^src/${folder}/` },
      to: {
        path: forbidden.length > 0 ? [`^src/(${forbidden.join('|')})/`, ENTRY_POINTS] : [ENTRY_POINTS],
      },
    };
  }),
);

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import cycles in src/, type-only imports included; see docs/ARCHITECTURE.md.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'layer-folder-known',
      severity: 'error',
      comment:
        'Every folder of src/ belongs to a layer: add a new folder to LAYERS in .dependency-cruiser.cjs (and to ' +
        'docs/ARCHITECTURE.md), or the layer rules would not see it.',
      from: { path: '^src/' },
      to: { path: `^src/(?!(${LAYERS.flat().join('|')})/)[^/]+/` },
    },
    {
      name: 'resolver-implementations-apart',
      severity: 'error',
      comment:
        'resolvers/dns, resolvers/consul and resolvers/etcd share code through src/resolvers/ (or lower), ' +
        'never by importing each other.',
      from: { path: `^src/resolvers/(${RESOLVER_IMPLEMENTATIONS.join('|')})/` },
      to: {
        path: `^src/resolvers/(${RESOLVER_IMPLEMENTATIONS.join('|')})/`,
        pathNot: '^src/resolvers/$1/',
      },
    },
    {
      name: 'zookeeper-client-only-in-its-entry',
      severity: 'error',
      comment:
        'node-zookeeper-client is an optional peer: only src/resolvers/zookeeper/ imports it, and only the ' +
        'sidecarless/zookeeper entry (src/zookeeper.ts) imports that folder, so the other entries load without it.',
      from: { path: '^src/', pathNot: '^src/(zookeeper\\.ts|resolvers/zookeeper/)' },
      to: { path: ['node-zookeeper-client', '^src/resolvers/zookeeper/'] },
    },
    {
      name: 'src-not-to-outside',
      severity: 'error',
      comment: 'The library does not import tests, benchmarks, examples or scripts.',
      from: { path: '^src/' },
      to: { path: '^(test|bench|examples|scripts)/' },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'Every import resolves (a typo, or a module moved without its importers).',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
    {
      name: 'not-to-dev-dep',
      severity: 'error',
      comment:
        'The library imports only its dependencies and (optional) peers, never a devDependency alone ' +
        '(it would be missing once installed).',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only', 'npm-peer'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Count `import type` too: the layers hold for types as well as for values.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
