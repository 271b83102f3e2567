-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "operation_kind" AS ENUM ('deploy', 'associate', 'release', 'delete');

-- CreateEnum
CREATE TYPE "operation_state" AS ENUM ('queued', 'running', 'succeeded', 'failed');

-- CreateEnum
CREATE TYPE "allocation_state" AS ENUM ('requested', 'deploying', 'active', 'releasing', 'released', 'failed');

-- CreateEnum
CREATE TYPE "allocation_event_type" AS ENUM ('requested', 'deploying', 'allocated', 'releasing', 'released', 'failed', 'drift_detected');

-- CreateTable
CREATE TABLE "management_tenant" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "display_name" TEXT NOT NULL,
    "network_manager_id" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "management_tenant_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "credential_reference" (
    "id" UUID NOT NULL,
    "app_id" UUID NOT NULL,
    "vault_url" TEXT NOT NULL,
    "secret_name" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "credential_reference_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "managed_tenant" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "display_name" TEXT NOT NULL,
    "management_tenant_id" UUID NOT NULL,
    "credential_reference_id" UUID NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "managed_tenant_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "managed_subscription" (
    "subscription_id" UUID NOT NULL,
    "managed_tenant_id" UUID NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "managed_subscription_pkey" PRIMARY KEY ("subscription_id")
);

-- CreateTable
CREATE TABLE "operation" (
    "id" UUID NOT NULL,
    "kind" "operation_kind" NOT NULL,
    "state" "operation_state" NOT NULL DEFAULT 'queued',
    "managed_tenant_id" UUID NOT NULL,
    "subscription_id" UUID NOT NULL,
    "resource_group" TEXT NOT NULL,
    "vnet_name" TEXT NOT NULL,
    "requester_oid" TEXT NOT NULL,
    "requester_app_id" TEXT,
    "team" TEXT,
    "ticket" TEXT,
    "idempotency_key" TEXT,
    "request_hash" TEXT NOT NULL,
    "request" JSONB NOT NULL,
    "poller_state" TEXT,
    "result" JSONB,
    "error" JSONB,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "operation_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "operation_step" (
    "id" BIGSERIAL NOT NULL,
    "operation_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "state" "operation_state" NOT NULL,
    "arm_request_id" TEXT,
    "arm_correlation_id" TEXT,
    "detail" JSONB,
    "started_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),

    CONSTRAINT "operation_step_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "allocation" (
    "id" UUID NOT NULL,
    "operation_id" UUID NOT NULL,
    "managed_tenant_id" UUID NOT NULL,
    "subscription_id" UUID NOT NULL,
    "resource_group" TEXT NOT NULL,
    "vnet_name" TEXT NOT NULL,
    "vnet_id" TEXT NOT NULL,
    "pool_id" TEXT NOT NULL,
    "requested_size" DECIMAL(40,0) NOT NULL,
    "state" "allocation_state" NOT NULL DEFAULT 'requested',
    "team" TEXT,
    "requester_oid" TEXT NOT NULL,
    "ticket" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "allocated_at" TIMESTAMPTZ(3),
    "released_at" TIMESTAMPTZ(3),
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "allocation_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "allocation_prefix" (
    "id" BIGSERIAL NOT NULL,
    "allocation_id" UUID NOT NULL,
    "prefix" INET NOT NULL,

    CONSTRAINT "allocation_prefix_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "allocation_event" (
    "id" BIGSERIAL NOT NULL,
    "allocation_id" UUID NOT NULL,
    "operation_id" UUID,
    "type" "allocation_event_type" NOT NULL,
    "actor" TEXT NOT NULL,
    "prefixes" INET[],
    "arm_request_id" TEXT,
    "arm_correlation_id" TEXT,
    "detail" JSONB,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "allocation_event_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "management_tenant_tenant_id_key" ON "management_tenant"("tenant_id");

-- CreateIndex
CREATE UNIQUE INDEX "credential_reference_app_id_vault_url_secret_name_key" ON "credential_reference"("app_id", "vault_url", "secret_name");

-- CreateIndex
CREATE UNIQUE INDEX "managed_tenant_tenant_id_key" ON "managed_tenant"("tenant_id");

-- CreateIndex
CREATE INDEX "managed_tenant_management_tenant_id_idx" ON "managed_tenant"("management_tenant_id");

-- CreateIndex
CREATE INDEX "managed_tenant_credential_reference_id_idx" ON "managed_tenant"("credential_reference_id");

-- CreateIndex
CREATE INDEX "managed_subscription_managed_tenant_id_idx" ON "managed_subscription"("managed_tenant_id");

-- CreateIndex
CREATE INDEX "operation_managed_tenant_id_idx" ON "operation"("managed_tenant_id");

-- CreateIndex
CREATE INDEX "operation_state_created_at_idx" ON "operation"("state", "created_at");

-- CreateIndex
CREATE UNIQUE INDEX "operation_requester_oid_idempotency_key_key" ON "operation"("requester_oid", "idempotency_key");

-- CreateIndex
CREATE INDEX "operation_step_operation_id_idx" ON "operation_step"("operation_id");

-- CreateIndex
CREATE INDEX "allocation_managed_tenant_id_idx" ON "allocation"("managed_tenant_id");

-- CreateIndex
CREATE INDEX "allocation_subscription_id_idx" ON "allocation"("subscription_id");

-- CreateIndex
CREATE INDEX "allocation_operation_id_idx" ON "allocation"("operation_id");

-- CreateIndex
CREATE INDEX "allocation_pool_id_state_idx" ON "allocation"("pool_id", "state");

-- CreateIndex
CREATE INDEX "allocation_vnet_id_idx" ON "allocation"("vnet_id");

-- CreateIndex
CREATE INDEX "allocation_team_created_at_idx" ON "allocation"("team", "created_at");

-- CreateIndex
CREATE INDEX "allocation_allocated_at_released_at_idx" ON "allocation"("allocated_at", "released_at");

-- CreateIndex
CREATE INDEX "allocation_prefix_allocation_id_idx" ON "allocation_prefix"("allocation_id");

-- CreateIndex
CREATE INDEX "allocation_event_allocation_id_at_idx" ON "allocation_event"("allocation_id", "at");

-- CreateIndex
CREATE INDEX "allocation_event_operation_id_idx" ON "allocation_event"("operation_id");

-- AddForeignKey
ALTER TABLE "managed_tenant" ADD CONSTRAINT "managed_tenant_management_tenant_id_fkey" FOREIGN KEY ("management_tenant_id") REFERENCES "management_tenant"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "managed_tenant" ADD CONSTRAINT "managed_tenant_credential_reference_id_fkey" FOREIGN KEY ("credential_reference_id") REFERENCES "credential_reference"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "managed_subscription" ADD CONSTRAINT "managed_subscription_managed_tenant_id_fkey" FOREIGN KEY ("managed_tenant_id") REFERENCES "managed_tenant"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "operation" ADD CONSTRAINT "operation_managed_tenant_id_fkey" FOREIGN KEY ("managed_tenant_id") REFERENCES "managed_tenant"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "operation_step" ADD CONSTRAINT "operation_step_operation_id_fkey" FOREIGN KEY ("operation_id") REFERENCES "operation"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "allocation" ADD CONSTRAINT "allocation_operation_id_fkey" FOREIGN KEY ("operation_id") REFERENCES "operation"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "allocation" ADD CONSTRAINT "allocation_managed_tenant_id_fkey" FOREIGN KEY ("managed_tenant_id") REFERENCES "managed_tenant"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "allocation_prefix" ADD CONSTRAINT "allocation_prefix_allocation_id_fkey" FOREIGN KEY ("allocation_id") REFERENCES "allocation"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "allocation_event" ADD CONSTRAINT "allocation_event_allocation_id_fkey" FOREIGN KEY ("allocation_id") REFERENCES "allocation"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "allocation_event" ADD CONSTRAINT "allocation_event_operation_id_fkey" FOREIGN KEY ("operation_id") REFERENCES "operation"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- Prefixes are networks: no host bits set (Prisma has no cidr type, so the column is inet with a check).
ALTER TABLE "allocation_prefix" ADD CONSTRAINT "allocation_prefix_is_network" CHECK ("prefix" = network("prefix")::inet);

-- The ledger is append-only: a history that can be rewritten cannot answer "who held this prefix".
CREATE FUNCTION "allocation_event_refuse_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'allocation_event is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER "allocation_event_append_only"
  BEFORE UPDATE OR DELETE ON "allocation_event"
  FOR EACH ROW EXECUTE FUNCTION "allocation_event_refuse_change"();

CREATE TRIGGER "allocation_event_no_truncate"
  BEFORE TRUNCATE ON "allocation_event"
  FOR EACH STATEMENT EXECUTE FUNCTION "allocation_event_refuse_change"();
