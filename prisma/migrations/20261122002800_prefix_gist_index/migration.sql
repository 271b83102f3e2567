-- CreateIndex
CREATE INDEX "allocation_prefix_prefix_idx" ON "allocation_prefix" USING GIST ("prefix" inet_ops);
