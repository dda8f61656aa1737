/**
 * Import layering between packages (DESIGN.md "Layers"), checked in `make test` by
 * scripts/check-layers.mjs, which runs dependency-cruiser with these rules and then checks that
 * core-tensor's folders form no cycle. cli -> plugins -> core-tensor -> kernels-napi; plugins are
 * packages/plugin-* and examples/*. Packages meet only by package name: an import resolves to the
 * other package's dist/, as it does for users; a relative path into its src/ or test/ would load a
 * second copy of it.
 * Paths are relative to the folder cruised (the repo, or a fixture tree in the check's own tests).
 * An import that does not resolve is matched by its name, so `@peft/plugin-x` is caught unbuilt too.
 */
const PLUGIN_FROM = '^(packages/plugin-[^/]+|examples/[^/]+)/';
const PLUGIN_TO = '^packages/plugin-[^/]+/|^examples/[^/]+/|^@peft/plugin-|^peft-example-';
const CLI_TO = '^packages/cli/|^@peft/cli$';

module.exports = {
  forbidden: [
    {
      name: 'kernels-import-nothing-of-ours',
      comment: 'kernels-napi is a leaf: it knows nothing of the layers above it.',
      severity: 'error',
      from: { path: '^packages/kernels-napi/' },
      to: { path: '^packages/(?!kernels-napi/)|^(examples|tests|scripts)/|^@peft/|^peft-example-' },
    },
    {
      name: 'core-imports-no-plugin-or-cli',
      comment: 'core-tensor learns of methods through the registry only.',
      severity: 'error',
      from: { path: '^packages/core-tensor/' },
      to: { path: `${PLUGIN_TO}|${CLI_TO}` },
    },
    {
      name: 'plugin-imports-no-other-plugin',
      comment: 'Plugins cooperate through the registry, never by importing each other.',
      severity: 'error',
      from: { path: PLUGIN_FROM },
      to: { path: PLUGIN_TO, pathNot: '^$1/' },
    },
    {
      name: 'plugin-imports-no-cli',
      severity: 'error',
      from: { path: PLUGIN_FROM },
      to: { path: CLI_TO },
    },
    {
      name: 'packages-meet-by-name',
      comment: "Import another package by its name (its built dist/); a relative path into its sources or tests loads a second copy of it.",
      severity: 'error',
      from: { path: '^((?:packages|examples)/[^/]+|tests)/' },
      to: { path: '^(packages|examples)/[^/]+/(src|test|bench|bin|scripts)/', pathNot: '^$1/' },
    },
    {
      name: 'imports-resolve',
      comment: 'An import that does not resolve hides its layer (packages resolve to dist/: `make ts` first).',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: ['node_modules', '/dist/'] },
    exclude: { path: ['/target/', '\\.d\\.ts$'] },
    tsPreCompilationDeps: true, // `import type` is a dependency too
    // Packages resolve as Node resolves them: through package.json "exports" (@oclif/core has no "main").
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
