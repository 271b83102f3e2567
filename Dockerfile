# syntax=docker/dockerfile:1
# The image runs the compiled broker on the Node release the tests run on (package.json's `node`).
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

# ---- build: install everything, generate the Prisma client, compile TypeScript ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# What `npm ci` needs, postinstall (Prisma client generation) included; the rest comes later so
# that a change to the sources or a new migration does not invalidate the install layer.
COPY package.json package-lock.json prisma.config.ts ./
COPY prisma/schema.prisma ./prisma/
COPY scripts/prisma-generate.ts ./scripts/
# npm ci installs the workspaces package-lock.json names (the API client); it needs their manifests.
COPY openapi/client/package.json ./openapi/client/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --omit=optional --no-audit --no-fund

# ---- runtime: production dependencies only, non-root ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps \
    HOST=0.0.0.0 \
    PORT=3000 \
    AZURE_CLOUD=AzurePublicCloud
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Applied at start (MIGRATE_ON_START) or as a release step: node dist/db/migrate-cli.js
COPY prisma/migrations ./prisma/migrations
USER node
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/server.js"]
