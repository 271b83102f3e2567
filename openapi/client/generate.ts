// `npm run client:generate`: rewrites src/generated/ from openapi/openapi.json (`npm run openapi` runs it
// after writing the document). A test fails when the committed files differ from what this generates.
import path from 'node:path'
import { createClient } from '@hey-api/openapi-ts'
import { clientConfig, GENERATED_DIR } from './openapi-ts.config.ts'

export { GENERATED_DIR }

export async function generateClient(output: string = GENERATED_DIR, options: { quiet?: boolean } = {}): Promise<void> {
  await createClient(clientConfig(output, options))
}

if (import.meta.main) {
  await generateClient()
  process.stdout.write(`wrote ${path.relative(process.cwd(), GENERATED_DIR)}\n`)
}
