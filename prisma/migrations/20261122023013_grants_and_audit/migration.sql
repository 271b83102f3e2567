-- CreateEnum
CREATE TYPE "grant_principal_type" AS ENUM ('object', 'app', 'group');

-- CreateEnum
CREATE TYPE "audit_decision" AS ENUM ('allowed', 'denied');

-- CreateTable
CREATE TABLE "access_grant" (
    "id" UUID NOT NULL,
    "principal_type" "grant_principal_type" NOT NULL,
    "principal_id" TEXT NOT NULL,
    "subscription_ids" TEXT[],
    "pool_ids" TEXT[],
    "max_addresses" DECIMAL(40,0) NOT NULL,
    "description" TEXT,
    "created_by" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revoked_at" TIMESTAMPTZ(3),
    "revoked_by" TEXT,

    CONSTRAINT "access_grant_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "audit_event" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "actor_oid" TEXT,
    "actor_app_id" TEXT,
    "action" TEXT NOT NULL,
    "decision" "audit_decision",
    "reason" TEXT,
    "grant_id" UUID,
    "target" TEXT,
    "request_id" TEXT,
    "operation_id" UUID,
    "detail" JSONB,

    CONSTRAINT "audit_event_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "access_grant_principal_type_principal_id_idx" ON "access_grant"("principal_type", "principal_id");

-- CreateIndex
CREATE INDEX "audit_event_at_idx" ON "audit_event"("at");

-- CreateIndex
CREATE INDEX "audit_event_actor_oid_at_idx" ON "audit_event"("actor_oid", "at");

-- CreateIndex
CREATE INDEX "audit_event_action_at_idx" ON "audit_event"("action", "at");

-- CreateIndex
CREATE INDEX "audit_event_operation_id_idx" ON "audit_event"("operation_id");

-- The audit trail is append-only, like the allocation ledger.
CREATE FUNCTION "audit_event_refuse_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_event is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER "audit_event_append_only"
  BEFORE UPDATE OR DELETE ON "audit_event"
  FOR EACH ROW EXECUTE FUNCTION "audit_event_refuse_change"();

CREATE TRIGGER "audit_event_no_truncate"
  BEFORE TRUNCATE ON "audit_event"
  FOR EACH STATEMENT EXECUTE FUNCTION "audit_event_refuse_change"();
