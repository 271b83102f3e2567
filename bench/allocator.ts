// Allocation latency of the emulator's IPAM allocator in a pool holding 100,000 allocations.
// Run: node bench/allocator.ts
import { AddressSpace, parsePrefix, type Prefix } from '../emulator/arm/allocator.ts'
import { mulberry32 } from '../test/helpers/prng.ts'

const FILL = 100_000
const TIMED = 1_000
const TARGET_US = 1000
const SIZES = [16n, 32n, 64n, 256n, 144n]

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

function run(cidr: string, seed: number): void {
  const rand = mulberry32(seed)
  const size = () => SIZES[Math.floor(rand() * SIZES.length)]!
  const pool = new AddressSpace([parsePrefix(cidr)])
  const live: Prefix[][] = []

  const fillStart = process.hrtime.bigint()
  for (let i = 0; i < FILL; i++) live.push(pool.allocate(size()))
  const fillMs = Number(process.hrtime.bigint() - fillStart) / 1e6

  // Release a random allocation before each timed one, so the pool stays at 100k and
  // the allocator has to find holes scattered across the pool, not just the tail.
  const allocUs: number[] = []
  const releaseUs: number[] = []
  for (let i = 0; i < TIMED; i++) {
    const index = Math.floor(rand() * live.length)
    const victim = live[index]!
    const count = size()
    const t0 = process.hrtime.bigint()
    pool.release(victim)
    const t1 = process.hrtime.bigint()
    live[index] = pool.allocate(count)
    const t2 = process.hrtime.bigint()
    releaseUs.push(Number(t1 - t0) / 1e3)
    allocUs.push(Number(t2 - t1) / 1e3)
  }
  allocUs.sort((a, b) => a - b)
  releaseUs.sort((a, b) => a - b)
  const median = percentile(allocUs, 0.5)
  const p99 = percentile(allocUs, 0.99)
  const usage = pool.usage()
  const verdict = p99 < TARGET_US ? 'ok' : 'MISSED'
  console.log(
    `IPv${pool.family} ${cidr}: allocate median ${median.toFixed(1)} us, p99 ${p99.toFixed(1)} us ` +
      `(target < 1 ms: ${verdict}); release median ${percentile(releaseUs, 0.5).toFixed(1)} us; ` +
      `fill of ${FILL} allocations ${fillMs.toFixed(0)} ms; ${usage.availablePrefixes.length} free blocks, ` +
      `${((Number(usage.taken) / Number(usage.total)) * 100).toFixed(1)}% taken`,
  )
}

// Worst case for the free lists: 100k single addresses with every other one released leaves
// 50k unmergeable free blocks of one size, so every insert and removal shifts a long array.
function fragmented(cidr: string, seed: number): void {
  const rand = mulberry32(seed)
  const pool = new AddressSpace([parsePrefix(cidr)])
  const live: Prefix[][] = []
  for (let i = 0; i < FILL; i++) live.push(pool.allocate(1n))
  for (let i = 0; i < FILL; i += 2) pool.release(live[i]!)
  const held = live.filter((_, i) => i % 2 === 1)
  const allocUs: number[] = []
  for (let i = 0; i < TIMED; i++) {
    const index = Math.floor(rand() * held.length)
    pool.release(held[index]!)
    const t0 = process.hrtime.bigint()
    held[index] = pool.allocate(i % 2 === 0 ? 1n : SIZES[i % SIZES.length]!)
    allocUs.push(Number(process.hrtime.bigint() - t0) / 1e3)
  }
  allocUs.sort((a, b) => a - b)
  const p99 = percentile(allocUs, 0.99)
  console.log(
    `IPv${pool.family} ${cidr} fragmented (${pool.usage().availablePrefixes.length} free blocks): allocate median ` +
      `${percentile(allocUs, 0.5).toFixed(1)} us, p99 ${p99.toFixed(1)} us (target < 1 ms: ${p99 < TARGET_US ? 'ok' : 'MISSED'})`,
  )
}

run('10.0.0.0/8', 42)
run('fd00::/40', 42)
fragmented('10.0.0.0/8', 7)
fragmented('fd00::/40', 7)
