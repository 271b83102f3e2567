import { defineConfig } from 'prisma/config'

// Prisma 7 reads the connection string here rather than from schema.prisma. The CLI is only used for
// `prisma generate` on these machines; migrations are applied by src/db/migrate.ts (offline Wasm engine).
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env['DATABASE_URL'] ?? 'postgresql://localhost:5432/ipam_broker' },
})
