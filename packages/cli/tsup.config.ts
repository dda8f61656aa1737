import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/commands/*.ts', 'src/index.ts'],
  format: ['esm'],
  dts: false,
  sourcemap: true,
  clean: true,
  target: 'node20',
  // oclif finds commands by file path, so keep one output file per command.
  splitting: true,
  external: ['@peft/core-tensor', '@peft/kernels-napi'],
});
