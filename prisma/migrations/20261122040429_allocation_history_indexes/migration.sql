-- DropIndex
DROP INDEX "allocation_allocated_at_released_at_idx";

-- DropIndex
DROP INDEX "allocation_managed_tenant_id_idx";

-- DropIndex
DROP INDEX "allocation_subscription_id_idx";

-- CreateIndex
CREATE INDEX "allocation_created_at_id_idx" ON "allocation"("created_at", "id");

-- CreateIndex
CREATE INDEX "allocation_allocated_at_id_idx" ON "allocation"("allocated_at", "id");

-- CreateIndex
CREATE INDEX "allocation_released_at_id_idx" ON "allocation"("released_at", "id");

-- CreateIndex
CREATE INDEX "allocation_managed_tenant_id_created_at_idx" ON "allocation"("managed_tenant_id", "created_at");

-- CreateIndex
CREATE INDEX "allocation_subscription_id_created_at_idx" ON "allocation"("subscription_id", "created_at");

-- CreateIndex
CREATE INDEX "allocation_pool_id_created_at_idx" ON "allocation"("pool_id", "created_at");

-- CreateIndex
CREATE INDEX "allocation_requester_oid_created_at_idx" ON "allocation"("requester_oid", "created_at");

-- CreateIndex
CREATE INDEX "allocation_state_created_at_idx" ON "allocation"("state", "created_at");

-- "Active at time T" (who held what on a given day): the period an allocation held its prefixes, as a
-- range, indexed for containment. Prisma's schema cannot describe expression indexes; this one lives
-- here only (the drift check ignores indexes it cannot represent).
CREATE INDEX "allocation_held_during_idx" ON "allocation" USING GIST (tstzrange("allocated_at", "released_at", '[)')) WHERE "allocated_at" IS NOT NULL;
