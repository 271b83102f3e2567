-- CreateEnum
CREATE TYPE "virtual_network_state" AS ENUM ('deploying', 'active', 'releasing', 'released', 'deleting', 'deleted', 'failed');

-- DropForeignKey
ALTER TABLE "operation" DROP CONSTRAINT "operation_managed_tenant_id_fkey";

-- DropIndex
DROP INDEX "allocation_vnet_id_idx";

-- DropIndex
DROP INDEX "operation_managed_tenant_id_idx";

-- AlterTable
ALTER TABLE "allocation" DROP COLUMN "vnet_id",
ADD COLUMN     "virtual_network_id" UUID NOT NULL,
ADD COLUMN     "vnet_resource_id" TEXT NOT NULL;

-- AlterTable
ALTER TABLE "management_tenant" ADD COLUMN     "pool_ids" TEXT[];

-- AlterTable
ALTER TABLE "operation" DROP COLUMN "managed_tenant_id",
DROP COLUMN "resource_group",
DROP COLUMN "subscription_id",
DROP COLUMN "team",
DROP COLUMN "ticket",
DROP COLUMN "vnet_name",
ADD COLUMN     "attempts" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "virtual_network_id" UUID NOT NULL;

-- CreateTable
CREATE TABLE "virtual_network" (
    "id" UUID NOT NULL,
    "managed_tenant_id" UUID NOT NULL,
    "subscription_id" UUID NOT NULL,
    "resource_group" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "resource_id" TEXT NOT NULL,
    "location" TEXT,
    "state" "virtual_network_state" NOT NULL,
    "team" TEXT,
    "ticket" TEXT,
    "requester_oid" TEXT NOT NULL,
    "network_group_ids" TEXT[],
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "virtual_network_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "virtual_network_managed_tenant_id_idx" ON "virtual_network"("managed_tenant_id");

-- CreateIndex
CREATE INDEX "virtual_network_subscription_id_resource_group_name_idx" ON "virtual_network"("subscription_id", "resource_group", "name");

-- CreateIndex
CREATE INDEX "virtual_network_state_created_at_idx" ON "virtual_network"("state", "created_at");

-- CreateIndex
CREATE INDEX "allocation_virtual_network_id_idx" ON "allocation"("virtual_network_id");

-- CreateIndex
CREATE INDEX "allocation_vnet_resource_id_idx" ON "allocation"("vnet_resource_id");

-- CreateIndex
CREATE INDEX "operation_virtual_network_id_idx" ON "operation"("virtual_network_id");

-- AddForeignKey
ALTER TABLE "virtual_network" ADD CONSTRAINT "virtual_network_managed_tenant_id_fkey" FOREIGN KEY ("managed_tenant_id") REFERENCES "managed_tenant"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "operation" ADD CONSTRAINT "operation_virtual_network_id_fkey" FOREIGN KEY ("virtual_network_id") REFERENCES "virtual_network"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "allocation" ADD CONSTRAINT "allocation_virtual_network_id_fkey" FOREIGN KEY ("virtual_network_id") REFERENCES "virtual_network"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
