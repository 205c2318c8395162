// Lint rules: ESLint's and typescript-eslint's recommended sets, type-aware where it finds real bugs
// (floating promises, misused promises). Formatting is not linted.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.tap/', 'var/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-non-null-assertion': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
      'no-control-regex': 'off',
    },
  },
  // The launcher's helpers are plain JavaScript that any Node runs.
  { files: ['bin/**/*.js'], languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' } } },
  // The mail console's script runs in the browser, served as it is.
  {
    files: ['relay/ops/console/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: Object.fromEntries(
        ['document', 'window', 'location', 'history', 'fetch', 'sessionStorage', 'URLSearchParams', 'Intl', 'Node', 'HTMLInputElement', 'HTMLSelectElement', 'setTimeout'].map((g) => [g, 'readonly']),
      ),
    },
  },
  // tap queues top-level t.test() calls itself; awaiting each would only serialise the file's setup.
  { files: ['test/**/*.ts'], rules: { '@typescript-eslint/no-floating-promises': 'off' } },
);
