// Type-aware lint with the dependency rules of STYLE.md: services and pure rules never
// touch the broker, Fastify, prom-client or process.env directly; apps never import apps.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const transportImports = {
  patterns: [
    {
      group: ['@nats-io/*'],
      message: 'Domain code does not touch the broker: use a repository from @backchannel/messaging.',
    },
    {
      group: ['fastify', '@fastify/*'],
      message: 'Domain code does not touch HTTP: keep it in controllers or libs/http.',
    },
    { group: ['prom-client'], message: 'Use Metrics from @backchannel/observability.' },
  ],
};

const crossAppImports = {
  patterns: [
    { group: ['**/apps/*/src/**', '../../*/src/**'], message: 'No app imports another app (STYLE.md rule 1).' },
    {
      group: ['@backchannel/*/src/**', '**/libs/*/src/**'],
      message: 'Import libraries through @backchannel/<lib> only.',
    },
  ],
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.data/**', 'coverage/**', '**/*.mjs', '**/*.js', 'examples/**/dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': [
        'error',
        {
          selector: "MemberExpression[object.name='process'][property.name='env']",
          message: 'Read configuration through @backchannel/config.',
        },
        {
          // On Node 20 one AsyncLocalStorage.run turns on a promise hook for every promise
          // the process makes: about a tenth of a service's CPU (docs/benchmarks.md, item 12).
          selector:
            "ImportSpecifier[imported.name='AsyncLocalStorage'], ImportSpecifier[imported.name='AsyncResource']",
          message: 'No implicit async context: pass the trace id (libs/observability/src/logger.ts says why).',
        },
      ],
    },
  },
  {
    files: ['apps/*/src/**/*.ts'],
    ignores: ['apps/*/src/**/*.spec.ts'],
    rules: { 'no-restricted-imports': ['error', crossAppImports] },
  },
  {
    files: ['apps/*/src/**/*.service.ts', 'apps/*/src/**/ordering/release-order.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [...transportImports.patterns, ...crossAppImports.patterns] }],
    },
  },
  {
    files: ['libs/contracts/src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@backchannel/*', '@nats-io/*', '@nestjs/*', 'fastify'],
              message: 'The contract depends on nothing.',
            },
          ],
        },
      ],
    },
  },
  {
    files: [
      'libs/config/src/load-config.ts',
      'libs/testing/src/**/*.ts',
      'test/**/*.ts',
      'bench/**/*.ts',
      'examples/**/*.ts',
      '**/*.spec.ts',
      '**/*.e2e-spec.ts',
    ],
    rules: { 'no-restricted-syntax': 'off' },
  },
  {
    files: ['**/*.spec.ts', '**/*.e2e-spec.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
);
