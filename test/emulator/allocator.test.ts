import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  AddressSpace,
  ConflictError,
  contains,
  ExhaustedError,
  formatPrefix,
  mergePrefixes,
  overlaps,
  parsePrefix,
  PrefixError,
  prefixSize,
  type Prefix,
} from '../../emulator/arm/allocator.ts'
import { mulberry32 } from '../helpers/prng.ts'

const p = parsePrefix
const texts = (prefixes: Prefix[]) => prefixes.map(formatPrefix)
const space = (...cidrs: string[]) => new AddressSpace(cidrs.map(p))

describe('allocator: parsing and formatting', () => {
  it('parses IPv4 and IPv6 prefixes into bigint networks', () => {
    assert.deepEqual(p('10.0.0.0/8'), { family: 4, network: 0x0a000000n, length: 8 })
    assert.deepEqual(p('0.0.0.0/0'), { family: 4, network: 0n, length: 0 })
    assert.deepEqual(p('255.255.255.255/32'), { family: 4, network: 0xffffffffn, length: 32 })
    assert.deepEqual(p('fd00::/48'), { family: 6, network: 0xfd00n << 112n, length: 48 })
    assert.deepEqual(p('fd00:0:0:1::/64'), { family: 6, network: (0xfd00n << 112n) | (1n << 64n), length: 64 })
    assert.deepEqual(p('::/0'), { family: 6, network: 0n, length: 0 })
    assert.deepEqual(p('::1/128'), { family: 6, network: 1n, length: 128 })
    assert.deepEqual(p('FD00:0000:0000:0000:0000:0000:0000:0000/8'), p('fd00::/8'))
    assert.deepEqual(p('::ffff:10.0.0.0/120'), { family: 6, network: (0xffffn << 32n) | 0x0a000000n, length: 120 })
  })

  it('formats canonically: IPv6 lowercase, longest zero run compressed, single zero groups kept', () => {
    const cases: [string, string][] = [
      ['10.1.2.0/24', '10.1.2.0/24'],
      ['FD00:0:0:1:0:0:0:0/64', 'fd00:0:0:1::/64'],
      ['2001:db8:0:0:1:0:0:0/96', '2001:db8:0:0:1::/96'],
      ['2001:db8:0:0:1:0:0:1/128', '2001:db8::1:0:0:1/128'],
      ['2001:db8:0:1:1:1:1:0/127', '2001:db8:0:1:1:1:1:0/127'],
      ['0:0:0:0:0:0:0:0/0', '::/0'],
      ['0:0:0:0:0:0:0:1/128', '::1/128'],
      ['1:0:0:0:0:0:0:0/16', '1::/16'],
      ['fd00:00ab::/32', 'fd00:ab::/32'],
    ]
    for (const [input, expected] of cases) assert.equal(formatPrefix(p(input)), expected, input)
  })

  it('rejects malformed text with PrefixError', () => {
    const bad = [
      '',
      '10.0.0.0',
      '10.0.0.0/',
      '10.0.0.0/33',
      '10.0.0.0/-1',
      '10.0.0.0/08',
      '10.0.0/24',
      '10.0.0.0.0/24',
      '256.0.0.0/8',
      '010.0.0.0/8',
      '10.0.0.0/8/8',
      'fd00::/129',
      'fd00:::/48',
      'fd00::1::/64',
      'fd00:12345::/32',
      'fd00:0:0:0:0:0:0:0:0/64',
      'fd00:0:0:0:0:0:0/64',
      'gd00::/16',
      '1.2.3.4::/64',
      'fd00::%eth0/64',
      ' 10.0.0.0/8',
    ]
    for (const input of bad) assert.throws(() => p(input), PrefixError, JSON.stringify(input))
  })

  it('rejects host bits set', () => {
    assert.throws(
      () => p('10.0.0.1/24'),
      (err: unknown) => {
        assert.ok(err instanceof PrefixError)
        assert.match(err.message, /host bits.*10\.0\.0\.0\/24/)
        return true
      },
    )
    assert.throws(() => p('fd00::1/64'), PrefixError)
    assert.throws(() => p('fd00:0:0:1::/48'), PrefixError)
  })

  it('computes sizes, containment and overlap', () => {
    assert.equal(prefixSize(p('10.0.0.0/8')), 1n << 24n)
    assert.equal(prefixSize(p('fd00::/48')), 1n << 80n)
    assert.ok(contains(p('10.0.0.0/8'), p('10.1.0.0/16')))
    assert.ok(contains(p('10.0.0.0/8'), p('10.0.0.0/8')))
    assert.ok(!contains(p('10.1.0.0/16'), p('10.0.0.0/8')))
    assert.ok(!contains(p('0.0.0.0/0'), p('::/0')))
    assert.ok(overlaps(p('10.1.0.0/16'), p('10.0.0.0/8')))
    assert.ok(!overlaps(p('10.0.0.0/8'), p('11.0.0.0/8')))
  })
})

describe('allocator: mergePrefixes', () => {
  it('merges adjacent and overlapping prefixes into a minimal sorted list', () => {
    assert.deepEqual(texts(mergePrefixes([p('11.0.0.0/8'), p('10.0.0.0/8')])), ['10.0.0.0/7'])
    assert.deepEqual(texts(mergePrefixes([p('10.0.0.0/24'), p('10.0.0.0/8'), p('10.5.0.0/16')])), ['10.0.0.0/8'])
    assert.deepEqual(texts(mergePrefixes([p('10.0.1.0/24'), p('10.0.2.0/24')])), ['10.0.1.0/24', '10.0.2.0/24'])
    assert.deepEqual(texts(mergePrefixes([p('10.0.1.0/24'), p('10.0.2.0/23'), p('10.0.0.0/24')])), ['10.0.0.0/22'])
    assert.deepEqual(texts(mergePrefixes([p('fd00:0:0:1::/64'), p('fd00::/64')])), ['fd00::/63'])
    assert.deepEqual(texts(mergePrefixes([p('fd00::/64'), p('10.0.0.0/8')])), ['10.0.0.0/8', 'fd00::/64'])
    assert.deepEqual(mergePrefixes([]), [])
  })
})

describe('allocator: AddressSpace', () => {
  it('rejects mixed families, overlapping input and empty input', () => {
    assert.throws(() => space('10.0.0.0/8', 'fd00::/48'), PrefixError)
    assert.throws(() => space('10.0.0.0/8', '10.1.0.0/16'), PrefixError)
    assert.throws(() => new AddressSpace([]), PrefixError)
    assert.throws(() => new AddressSpace([{ family: 4, network: 1n, length: 24 }]), PrefixError)
    assert.throws(() => new AddressSpace([{ family: 4, network: 0n, length: 33 }]), PrefixError)
    assert.throws(() => new AddressSpace([{ family: 4, network: 1n << 32n, length: 32 }]), PrefixError)
    assert.throws(() => space('10.0.0.0/16').reserve([{ family: 4, network: 0x0a000001n, length: 24 }]), PrefixError)
  })

  it('splits counts into power-of-two blocks, largest first, each at the lowest free aligned address', () => {
    assert.deepEqual(texts(space('10.0.0.0/16').allocate(256n)), ['10.0.0.0/24'])
    assert.deepEqual(texts(space('10.0.0.0/16').allocate(64n)), ['10.0.0.0/26'])
    assert.deepEqual(texts(space('10.0.0.0/16').allocate(144n)), ['10.0.0.0/25', '10.0.0.128/28'])
    assert.deepEqual(texts(space('10.0.0.0/16').allocate(80n)), ['10.0.0.0/26', '10.0.0.64/28'])
    assert.deepEqual(texts(space('10.0.0.0/16').allocate(1n)), ['10.0.0.0/32'])
    assert.deepEqual(texts(space('10.0.0.0/24').allocate(256n)), ['10.0.0.0/24'])

    const pool = space('10.0.0.0/16')
    assert.deepEqual(texts(pool.allocate(16n)), ['10.0.0.0/28'])
    // The /24 cannot start inside the first /24, the /28 fills the gap behind the first block.
    assert.deepEqual(texts(pool.allocate(272n)), ['10.0.1.0/24', '10.0.0.16/28'])
    assert.deepEqual(texts(pool.allocate(80n)), ['10.0.0.64/26', '10.0.0.32/28'])
  })

  it('spans adjacent pool prefixes, which count as one merged range', () => {
    const pool = space('10.0.1.0/24', '10.0.0.0/24')
    assert.deepEqual(texts(pool.usage().addressPrefixes), ['10.0.0.0/23'])
    assert.deepEqual(texts(pool.allocate(512n)), ['10.0.0.0/23'])
  })

  it('allocates IPv6 blocks', () => {
    const pool = space('fd00::/48')
    assert.deepEqual(texts(pool.allocate(1n << 64n)), ['fd00::/64'])
    assert.deepEqual(texts(pool.allocate(1n << 72n)), ['fd00:0:0:100::/56'])
    assert.deepEqual(texts(pool.allocate((1n << 64n) + (1n << 62n))), ['fd00:0:0:1::/64', 'fd00:0:0:2::/66'])
    assert.deepEqual(texts(pool.allocate(256n)), ['fd00:0:0:2:4000::/120'])
    assert.deepEqual(texts(space('fd00::/48').allocate(1n << 80n)), ['fd00::/48'])
  })

  it('reuses the lowest freed hole after a release', () => {
    const pool = space('10.0.0.0/16')
    const a = pool.allocate(256n)
    const b = pool.allocate(256n)
    pool.allocate(256n)
    pool.release(b)
    assert.deepEqual(texts(pool.allocate(64n)), ['10.0.1.0/26'])
    assert.deepEqual(texts(pool.allocate(256n)), ['10.0.3.0/24'])
    pool.release(a)
    assert.deepEqual(texts(pool.allocate(256n)), ['10.0.0.0/24'])
  })

  it('throws ExhaustedError and leaves the state unchanged when any block does not fit', () => {
    const pool = space('10.0.0.0/24')
    pool.reserve(['10.0.0.0/26', '10.0.0.128/28', '10.0.0.160/27', '10.0.0.192/28', '10.0.0.224/27'].map(p))
    const before = pool.usage()
    const takenBefore = pool.takenList()
    // 96 addresses are free (a /26 and two /28s) but not as a /26 plus a /27: all or nothing.
    assert.throws(
      () => pool.allocate(96n),
      (err: unknown) => {
        assert.ok(err instanceof ExhaustedError)
        assert.equal(err.requested, 96n)
        assert.equal(err.available, 96n)
        assert.match(err.message, /96 addresses: 96 free/)
        return true
      },
    )
    assert.throws(() => pool.allocate(97n), /cannot allocate 97 addresses: 96 free/)
    assert.deepEqual(pool.usage(), before)
    assert.deepEqual(pool.takenList(), takenBefore)
    assert.deepEqual(texts(pool.allocate(80n)), ['10.0.0.64/26', '10.0.0.144/28'])
  })

  it('rejects counts below one', () => {
    assert.throws(() => space('10.0.0.0/24').allocate(0n), RangeError)
    assert.throws(() => space('10.0.0.0/24').allocate(-4n), RangeError)
  })

  it('reserves exact prefixes and rejects conflicts all-or-nothing', () => {
    const pool = space('10.0.0.0/16')
    pool.reserve([p('10.0.1.0/24')])
    assert.ok(!pool.isFree(p('10.0.1.128/25')))
    assert.ok(!pool.isFree(p('10.0.0.0/23')))
    assert.ok(pool.isFree(p('10.0.0.0/24')))
    assert.ok(!pool.isFree(p('10.1.0.0/24')))
    assert.ok(!pool.isFree(p('fd00::/64')))
    assert.deepEqual(texts(pool.allocate(512n)), ['10.0.2.0/23'])

    const before = pool.usage()
    assert.throws(() => pool.reserve([p('10.0.8.0/24'), p('10.0.1.64/26')]), ConflictError)
    assert.throws(() => pool.reserve([p('10.0.8.0/24'), p('10.0.0.0/23')]), ConflictError)
    assert.throws(() => pool.reserve([p('10.0.8.0/24'), p('10.0.8.0/25')]), ConflictError)
    assert.throws(() => pool.reserve([p('10.0.8.0/24'), p('10.1.0.0/24')]), /outside/)
    assert.throws(() => pool.reserve([p('10.0.0.0/8')]), PrefixError)
    assert.throws(() => pool.reserve([p('fd00::/64')]), PrefixError)
    assert.deepEqual(pool.usage(), before)

    pool.reserve([p('10.0.8.0/24'), p('10.0.0.0/24')])
    assert.deepEqual(texts(pool.usage().takenPrefixes), ['10.0.0.0/22', '10.0.8.0/24'])
  })

  it('releases only what was handed out, exactly', () => {
    const pool = space('10.0.0.0/16')
    const blocks = pool.allocate(144n)
    assert.throws(() => pool.release([p('10.0.0.0/24')]), PrefixError)
    assert.throws(() => pool.release([p('10.0.0.0/26')]), PrefixError)
    assert.throws(() => pool.release([p('10.0.9.0/24')]), PrefixError)
    assert.throws(() => pool.release([blocks[0]!, blocks[0]!]), PrefixError)
    assert.throws(() => pool.release([blocks[0]!, p('10.0.9.0/24')]), PrefixError)
    assert.equal(pool.usage().taken, 144n)
    pool.release(blocks)
    assert.throws(() => pool.release(blocks), PrefixError)
    const usage = pool.usage()
    assert.equal(usage.taken, 0n)
    assert.deepEqual(texts(usage.availablePrefixes), ['10.0.0.0/16'])
  })

  it('reports usage with merged taken space and maximal free blocks', () => {
    const pool = space('10.0.0.0/22', '10.0.8.0/24')
    pool.allocate(256n)
    pool.reserve([p('10.0.1.0/25')])
    const usage = pool.usage()
    assert.equal(usage.total, 1280n)
    assert.equal(usage.taken, 384n)
    assert.equal(usage.available, 896n)
    assert.deepEqual(texts(usage.addressPrefixes), ['10.0.0.0/22', '10.0.8.0/24'])
    assert.deepEqual(texts(usage.takenPrefixes), ['10.0.0.0/24', '10.0.1.0/25'])
    assert.deepEqual(texts(usage.availablePrefixes), ['10.0.1.128/25', '10.0.2.0/23', '10.0.8.0/24'])
  })
})

// --- property test -------------------------------------------------------------------

interface Pool {
  name: string
  space: AddressSpace
  prefixes: Prefix[]
  parent: Pool | undefined
  depth: number
  // Leaf allocations (allocate results and static reservations), not child pools.
  allocations: Prefix[][]
  children: Pool[]
}

interface Family {
  root: string
  bits: number
  childLengths: number[]
  // Address counts to ask for, given the pool's size.
  count: (rand: () => number, poolSize: bigint) => bigint
}

const FAMILIES: Family[] = [
  {
    root: '10.0.0.0/16',
    bits: 32,
    childLengths: [20, 21, 22, 23, 24],
    count: (rand, size) => {
      const r = rand()
      if (r < 0.1) return BigInt(1 + Math.floor(rand() * Number(size / 2n)))
      if (r < 0.4) return 1n << BigInt(Math.floor(rand() * 9))
      return BigInt(1 + Math.floor(rand() * 300))
    },
  },
  {
    root: 'fd00::/48',
    bits: 128,
    childLengths: [52, 56],
    count: (rand, size) => {
      const r = rand()
      if (r < 0.1) return (size * BigInt(Math.floor(rand() * 1000))) / 2000n + 1n
      if (r < 0.5) return BigInt(1 + Math.floor(rand() * 40)) << 64n
      if (r < 0.7) return BigInt(1 + Math.floor(rand() * 1000)) << BigInt(Math.floor(rand() * 70))
      return BigInt(1 + Math.floor(rand() * 300))
    },
  },
]

// Free space computed the slow way, as intervals: the model the allocator is checked against.
function freeIntervals(pool: Pool, taken: Prefix[]): [bigint, bigint][] {
  const sorted = [...taken].sort((a, b) => (a.network < b.network ? -1 : a.network > b.network ? 1 : 0))
  const out: [bigint, bigint][] = []
  for (const range of mergePrefixes(pool.prefixes)) {
    let cursor = range.network
    const end = range.network + prefixSize(range)
    for (const t of sorted) {
      const tEnd = t.network + prefixSize(t)
      if (tEnd <= cursor || t.network >= end) continue
      if (t.network > cursor) out.push([cursor, t.network])
      cursor = tEnd
    }
    if (cursor < end) out.push([cursor, end])
  }
  return out
}

// Removes an aligned block found by lowestAlignedFree from the interval list, in place.
function carve(intervals: [bigint, bigint][], start: bigint, size: bigint): void {
  const index = intervals.findIndex(([a, b]) => a <= start && start + size <= b)
  const [a, b] = intervals[index]!
  const pieces: [bigint, bigint][] = []
  if (a < start) pieces.push([a, start])
  if (start + size < b) pieces.push([start + size, b])
  intervals.splice(index, 1, ...pieces)
}

function lowestAlignedFree(intervals: [bigint, bigint][], size: bigint): bigint | undefined {
  for (const [start, end] of intervals) {
    const aligned = ((start + size - 1n) / size) * size
    if (aligned + size <= end) return aligned
  }
  return undefined
}

function takenOf(pool: Pool): Prefix[] {
  return [...pool.allocations.flat(), ...pool.children.flatMap((child) => child.prefixes)]
}

function assertDisjoint(prefixes: Prefix[], what: string): void {
  const sorted = [...prefixes].sort((a, b) => (a.network < b.network ? -1 : a.network > b.network ? 1 : 0))
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!
    const next = sorted[i]!
    // Messages are built only on failure: formatting every pair dominated the run time.
    if (prev.network + prefixSize(prev) > next.network) {
      assert.fail(`${what}: ${formatPrefix(prev)} overlaps ${formatPrefix(next)}`)
    }
  }
}

type Stats = Record<'allocated' | 'exhausted' | 'reserved' | 'refused' | 'released' | 'created' | 'deleted', number>

function runProperty(family: Family, seed: number, steps: number): Stats {
  const stats: Stats = { allocated: 0, exhausted: 0, reserved: 0, refused: 0, released: 0, created: 0, deleted: 0 }
  const rand = mulberry32(seed)
  const pick = <T>(list: T[]): T => list[Math.floor(rand() * list.length)]!
  const rootPrefix = p(family.root)
  const root: Pool = {
    name: 'root',
    space: new AddressSpace([rootPrefix]),
    prefixes: [rootPrefix],
    parent: undefined,
    depth: 0,
    allocations: [],
    children: [],
  }
  const pools = [root]
  let step = 0
  const where = () => `seed ${seed}, step ${step}`
  const ctx = (message: string) => `${message} (${family.root}, ${where()})`

  function randomPrefixIn(pool: Pool, minLength: number): Prefix {
    const outer = pick(pool.prefixes)
    const lo = Math.min(Math.max(outer.length, minLength), family.bits)
    const length = lo + Math.floor(rand() * (Math.min(family.bits, lo + 12) - lo + 1))
    const slot = BigInt(Math.floor(rand() * 2 ** 32)) % (1n << BigInt(length - outer.length))
    return { family: outer.family, network: outer.network + slot * prefixSize({ ...outer, length }), length }
  }

  function checkAllocate(pool: Pool, count: bigint): Prefix[] | undefined {
    const before = pool.space.usage()
    const takenBefore = takenOf(pool)
    let result: Prefix[]
    try {
      result = pool.space.allocate(count)
    } catch (err) {
      assert.ok(err instanceof ExhaustedError, ctx(String(err)))
      assert.deepEqual(pool.space.usage(), before, ctx('failed allocate changed state'))
      // Exhaustion must be real: replaying the decomposition on the model also fails somewhere.
      const intervals = freeIntervals(pool, takenBefore)
      let fits = true
      for (let k = family.bits; k >= 0 && fits; k--) {
        if ((count & (1n << BigInt(k))) === 0n) continue
        const at = lowestAlignedFree(intervals, 1n << BigInt(k))
        if (at === undefined) fits = false
        else carve(intervals, at, 1n << BigInt(k))
      }
      assert.ok(!fits, ctx(`allocate(${count}) in ${pool.name} failed although it fits`))
      stats.exhausted++
      return undefined
    }
    const intervals = freeIntervals(pool, takenBefore)
    let sum = 0n
    let lastSize = -1n
    for (const block of result) {
      const size = prefixSize(block)
      assert.ok(lastSize < 0n || size < lastSize, ctx('blocks not strictly largest first'))
      lastSize = size
      sum += size
      const expected = lowestAlignedFree(intervals, size)
      if (block.network !== expected) assert.fail(ctx(`${formatPrefix(block)} is not the lowest free aligned block`))
      carve(intervals, block.network, size)
    }
    assert.equal(sum, count, ctx('allocated sizes do not add up to the count'))
    stats.allocated++
    return result
  }

  function checkReserve(pool: Pool, prefixes: Prefix[]): boolean {
    const taken = takenOf(pool)
    const expectOk =
      prefixes.every((x) => pool.prefixes.some((outer) => contains(outer, x))) &&
      prefixes.every((x, i) => !taken.some((t) => overlaps(t, x)) && !prefixes.slice(0, i).some((y) => overlaps(x, y)))
    const before = pool.space.usage()
    try {
      pool.space.reserve(prefixes)
    } catch (err) {
      assert.ok(err instanceof ConflictError || err instanceof PrefixError, ctx(String(err)))
      assert.ok(!expectOk, ctx(`reserve ${texts(prefixes).join()} in ${pool.name} failed: ${String(err)}`))
      assert.deepEqual(pool.space.usage(), before, ctx('failed reserve changed state'))
      stats.refused++
      return false
    }
    assert.ok(expectOk, ctx(`reserve ${texts(prefixes).join()} in ${pool.name} should have failed`))
    stats.reserved++
    return true
  }

  function createChild(parent: Pool): void {
    let prefixes: Prefix[] | undefined
    if (rand() < 0.5) {
      const length = pick(family.childLengths) + parent.depth * 2
      const count = rand() < 0.7 ? 1n << BigInt(family.bits - length) : family.count(rand, parent.space.total / 4n)
      prefixes = checkAllocate(parent, count)
    } else {
      const candidate = [randomPrefixIn(parent, pick(family.childLengths))]
      if (checkReserve(parent, candidate)) prefixes = candidate
    }
    if (prefixes === undefined) return
    const child: Pool = {
      name: `${parent.name}>${texts(prefixes).join('+')}`,
      space: new AddressSpace(prefixes),
      prefixes,
      parent,
      depth: parent.depth + 1,
      allocations: [],
      children: [],
    }
    parent.children.push(child)
    stats.created++
    pools.push(child)
  }

  function deleteChild(child: Pool): void {
    // Deleting a pool with children is refused by Azure; drop the leaves first.
    for (const grandchild of [...child.children]) deleteChild(grandchild)
    for (const allocation of child.allocations) child.space.release(allocation)
    assert.equal(child.space.usage().taken, 0n, ctx('pool not empty after releasing everything'))
    assert.deepEqual(
      child.space.usage().availablePrefixes,
      mergePrefixes(child.prefixes),
      ctx('free space not rejoined'),
    )
    const parent = child.parent!
    parent.space.release(child.prefixes)
    parent.children.splice(parent.children.indexOf(child), 1)
    pools.splice(pools.indexOf(child), 1)
    stats.deleted++
  }

  function checkInvariants(): void {
    const leaves: Prefix[] = []
    for (const pool of pools) {
      const taken = takenOf(pool)
      assertDisjoint(taken, ctx(`taken in ${pool.name}`))
      for (const t of taken) {
        if (!pool.prefixes.some((outer) => contains(outer, t)))
          assert.fail(ctx(`${formatPrefix(t)} outside ${pool.name}`))
      }
      leaves.push(...pool.allocations.flat())
      const usage = pool.space.usage()
      assert.equal(usage.total, usage.taken + usage.available, ctx(`usage of ${pool.name}`))
      assert.equal(
        usage.availablePrefixes.reduce((acc, x) => acc + prefixSize(x), 0n),
        usage.available,
        ctx(`available prefixes of ${pool.name}`),
      )
      assert.equal(
        usage.takenPrefixes.reduce((acc, x) => acc + prefixSize(x), 0n),
        usage.taken,
        ctx(`taken prefixes of ${pool.name}`),
      )
      assert.deepEqual(usage.takenPrefixes, mergePrefixes(taken), ctx(`taken prefixes of ${pool.name} vs model`))
      assert.deepEqual(mergePrefixes(usage.availablePrefixes), usage.availablePrefixes, ctx('free blocks not maximal'))
      assertDisjoint([...usage.availablePrefixes, ...usage.takenPrefixes], ctx(`free vs taken in ${pool.name}`))
    }
    assertDisjoint(leaves, ctx('live allocations across all pools'))
  }

  for (step = 0; step < steps; step++) {
    const pool = pick(pools)
    const live = pools.reduce((acc, x) => acc + x.allocations.length, 0)
    const r = rand()
    if (r < 0.35) {
      const result = checkAllocate(pool, family.count(rand, pool.space.total))
      if (result) pool.allocations.push(result)
    } else if (r < 0.45) {
      const candidate = [randomPrefixIn(pool, pool.prefixes[0]!.length + 2)]
      if (rand() < 0.3) candidate.push(randomPrefixIn(pool, pool.prefixes[0]!.length + 4))
      if (checkReserve(pool, candidate)) pool.allocations.push(candidate)
    } else if (r < 0.55 + Math.min(0.3, live / 400)) {
      if (pool.allocations.length === 0) continue
      const index = Math.floor(rand() * pool.allocations.length)
      const allocation = pool.allocations[index]!
      if (rand() < 0.2) {
        // A sub-block of a taken prefix was not handed out as such.
        const first = allocation[0]!
        if (first.length < family.bits) {
          const bogus = { ...first, length: first.length + 1 }
          assert.throws(() => pool.space.release([bogus]), PrefixError, ctx('released a sub-block'))
        }
      }
      pool.space.release(allocation)
      pool.allocations.splice(index, 1)
      stats.released++
    } else if (r < 0.7) {
      if (pool.depth < 2) createChild(pool)
    } else if (r < 0.8) {
      if (pool !== root) deleteChild(pool)
    } else {
      const probe = randomPrefixIn(pool, pool.prefixes[0]!.length + 4)
      const expected = !takenOf(pool).some((t) => overlaps(t, probe))
      assert.equal(pool.space.isFree(probe), expected, ctx(`isFree(${formatPrefix(probe)}) in ${pool.name}`))
    }
    checkInvariants()
  }
  // Tear everything down: the root must come back whole.
  for (const child of [...root.children]) deleteChild(child)
  for (const allocation of root.allocations) root.space.release(allocation)
  assert.deepEqual(root.space.usage().availablePrefixes, [rootPrefix], ctx('root not whole after teardown'))
  return stats
}

describe('allocator: property test over nested pools', () => {
  const fromEnv = process.env.ALLOCATOR_SEED
  const seeds = fromEnv ? [Number(fromEnv)] : [1, 0xc0ffee, 20251122]
  const steps = Number(process.env.ALLOCATOR_STEPS ?? 1500)
  for (const family of FAMILIES) {
    for (const seed of seeds) {
      it(`${family.root}: ${steps} random allocate/reserve/release steps (seed ${seed})`, () => {
        let stats: Stats
        try {
          stats = runProperty(family, seed, steps)
        } catch (err) {
          throw new Error(`reproduce with ALLOCATOR_SEED=${seed}: ${String(err)}`, { cause: err })
        }
        // Guard against a vacuous run: every kind of event must have happened.
        for (const [event, n] of Object.entries(stats))
          assert.ok(n > 0, `seed ${seed}: no '${event}' event in ${steps} steps`)
        if (process.env.ALLOCATOR_STATS) console.log(family.root, seed, stats)
      })
    }
  }
})
