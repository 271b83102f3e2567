// How the typed client is generated from openapi/openapi.json: @hey-api/openapi-ts with its fetch client
// copied into the output, so the package has no runtime dependency. `npm run client:generate` (or the
// `openapi-ts` CLI, which reads this file's default export) writes src/generated/, which is committed.
import path from 'node:path'
import { defineConfig, type UserConfig } from '@hey-api/openapi-ts'

export const OPENAPI_DOCUMENT = path.resolve(import.meta.dirname, '../openapi.json')
export const GENERATED_DIR = path.resolve(import.meta.dirname, 'src/generated')

export function clientConfig(output: string = GENERATED_DIR, { quiet = false } = {}): UserConfig {
  return {
    input: OPENAPI_DOCUMENT,
    output: {
      path: output,
      // Relative imports end in .ts, as the rest of the repository's: Node strips the types in place and
      // tsc rewrites them to .js in dist/ (rewriteRelativeImportExtensions).
      module: { extension: '.ts' },
      // Fixed rather than looked up from the output folder, so a generation into a temporary folder
      // (the drift test) writes the same files.
      tsConfigPath: path.resolve(import.meta.dirname, 'tsconfig.json'),
    },
    plugins: [
      // Typed as throwing: an error answer rejects (with a BrokerProblemError, see src/client.ts) rather
      // than coming back as `{ error }` beside `data`.
      { name: '@hey-api/client-fetch', throwOnError: true },
      '@hey-api/typescript',
      '@hey-api/sdk',
    ],
    logs: { level: quiet ? 'silent' : 'info', file: false },
  }
}

export default defineConfig(clientConfig())
