// Jest runs the TypeScript sources as ES modules (Node 20 + @swc/jest): see ../shared/TOOLCHAIN.md.
const swc = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
      keepClassNames: true,
    },
    module: { type: 'es6' },
  },
];

const moduleNameMapper = {
  '^@backchannel/(contracts|config|messaging|http|observability|testing)$': '<rootDir>/libs/$1/src/index.ts',
  // Sources import siblings with explicit `.js` extensions (nodenext); map them back to `.ts`.
  '^(\\.{1,2}/.*)\\.js$': '$1',
};

const base = {
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': swc },
  moduleNameMapper,
  testEnvironment: 'node',
  rootDir: '.',
};

export default {
  globalSetup: '<rootDir>/jest.global-setup.mjs',
  testTimeout: 60_000,
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/{apps,libs}/**/*.spec.ts'] },
    { ...base, displayName: 'e2e', testMatch: ['<rootDir>/{apps,test}/**/*.e2e-spec.ts'] },
  ],
};
