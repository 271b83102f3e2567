// Address allocator behind the emulated Azure Virtual Network Manager IPAM pools.
// Pure: no I/O, addresses are bigint so IPv4 and IPv6 share one code path.

export type Family = 4 | 6

export interface Prefix {
  family: Family
  network: bigint
  length: number
}

export interface Usage {
  total: bigint
  taken: bigint
  available: bigint
  addressPrefixes: Prefix[]
  takenPrefixes: Prefix[]
  availablePrefixes: Prefix[]
}

export class PrefixError extends Error {
  override name = 'PrefixError'
}

export class ConflictError extends Error {
  override name = 'ConflictError'
}

export class ExhaustedError extends Error {
  override name = 'ExhaustedError'
  readonly requested: bigint
  readonly available: bigint
  constructor(requested: bigint, available: bigint, detail = '') {
    super(`cannot allocate ${requested} addresses: ${available} free${detail}`)
    this.requested = requested
    this.available = available
  }
}

export function familyBits(family: Family): number {
  return family === 4 ? 32 : 128
}

function blockSize(family: Family, length: number): bigint {
  return 1n << BigInt(familyBits(family) - length)
}

function hostMask(family: Family, length: number): bigint {
  return blockSize(family, length) - 1n
}

const DECIMAL = /^(0|[1-9][0-9]*)$/
const OCTET = /^(0|[1-9][0-9]{0,2})$/
const HEXTET = /^[0-9a-fA-F]{1,4}$/

function parseIPv4(text: string): bigint | undefined {
  const parts = text.split('.')
  if (parts.length !== 4) return undefined
  let value = 0n
  for (const part of parts) {
    // Leading zeros are rejected: some stacks read them as octal.
    if (!OCTET.test(part)) return undefined
    const octet = Number(part)
    if (octet > 255) return undefined
    value = (value << 8n) | BigInt(octet)
  }
  return value
}

function parseHextets(text: string): number[] | undefined {
  if (text === '') return []
  const groups: number[] = []
  const parts = text.split(':')
  for (const [index, part] of parts.entries()) {
    if (index === parts.length - 1 && part.includes('.')) {
      const v4 = parseIPv4(part)
      if (v4 === undefined) return undefined
      groups.push(Number(v4 >> 16n), Number(v4 & 0xffffn))
    } else if (HEXTET.test(part)) {
      groups.push(parseInt(part, 16))
    } else {
      return undefined
    }
  }
  return groups
}

function parseIPv6(text: string): bigint | undefined {
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  const head = parseHextets(halves[0]!)
  if (head === undefined) return undefined
  let groups: number[]
  if (halves.length === 2) {
    const tail = parseHextets(halves[1]!)
    // An embedded IPv4 tail is only valid at the very end, never in the head.
    if (tail === undefined || halves[0]!.includes('.')) return undefined
    const missing = 8 - head.length - tail.length
    if (missing < 1) return undefined
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail]
  } else {
    groups = head
  }
  if (groups.length !== 8) return undefined
  return groups.reduce((acc, group) => (acc << 16n) | BigInt(group), 0n)
}

export function parsePrefix(cidr: string): Prefix {
  const slash = cidr.indexOf('/')
  if (slash < 0 || cidr.indexOf('/', slash + 1) >= 0) throw new PrefixError(`not a CIDR prefix: '${cidr}'`)
  const address = cidr.slice(0, slash)
  const lengthText = cidr.slice(slash + 1)
  const family: Family = address.includes(':') ? 6 : 4
  const network = family === 4 ? parseIPv4(address) : parseIPv6(address)
  if (network === undefined) throw new PrefixError(`invalid IPv${family} address in '${cidr}'`)
  const length = DECIMAL.test(lengthText) ? Number(lengthText) : NaN
  if (!(length <= familyBits(family))) throw new PrefixError(`invalid prefix length in '${cidr}'`)
  if ((network & hostMask(family, length)) !== 0n) {
    throw new PrefixError(
      `host bits set in '${cidr}' (network is ${formatPrefix({ family, network: network & ~hostMask(family, length), length })})`,
    )
  }
  return { family, network, length }
}

export function formatAddress(family: Family, address: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((shift) => String((address >> shift) & 0xffn)).join('.')
  }
  const groups: number[] = []
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((address >> shift) & 0xffffn))
  // RFC 5952: compress the longest run of two or more zero groups, the first one on a tie.
  let bestStart = -1
  let bestLength = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) {
      bestStart = i
      bestLength = j - i
    }
    i = j
  }
  const hex = (list: number[]) => list.map((group) => group.toString(16)).join(':')
  if (bestStart < 0) return hex(groups)
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`
}

// Prefix objects can be built by hand, not only by parsePrefix, so the space re-checks them.
function checkPrefix(prefix: Prefix): void {
  const bits = prefix.family === 4 || prefix.family === 6 ? familyBits(prefix.family) : -1
  if (
    !Number.isInteger(prefix.length) ||
    prefix.length < 0 ||
    prefix.length > bits ||
    prefix.network < 0n ||
    prefix.network >> BigInt(bits) !== 0n ||
    (prefix.network & hostMask(prefix.family, prefix.length)) !== 0n
  ) {
    throw new PrefixError(
      `malformed prefix {family: ${prefix.family}, network: ${prefix.network}, length: ${prefix.length}}`,
    )
  }
}

export function formatPrefix(prefix: Prefix): string {
  return `${formatAddress(prefix.family, prefix.network)}/${prefix.length}`
}

export function prefixSize(prefix: Prefix): bigint {
  return blockSize(prefix.family, prefix.length)
}

export function contains(outer: Prefix, inner: Prefix): boolean {
  return (
    outer.family === inner.family &&
    outer.length <= inner.length &&
    (inner.network & ~hostMask(outer.family, outer.length)) === outer.network
  )
}

export function overlaps(a: Prefix, b: Prefix): boolean {
  return contains(a, b) || contains(b, a)
}

export function comparePrefixes(a: Prefix, b: Prefix): number {
  if (a.family !== b.family) return a.family - b.family
  if (a.network !== b.network) return a.network < b.network ? -1 : 1
  return a.length - b.length
}

// Splits [start, end) into the fewest aligned blocks; each is then maximal.
function rangeToPrefixes(family: Family, start: bigint, end: bigint, out: Prefix[]): void {
  const bits = familyBits(family)
  while (start < end) {
    let length = start === 0n ? 0 : bits - lowestSetBit(start)
    while (start + blockSize(family, length) > end) length++
    out.push({ family, network: start, length })
    start += blockSize(family, length)
  }
}

function lowestSetBit(value: bigint): number {
  return (value & -value).toString(2).length - 1
}

export function mergePrefixes(prefixes: Prefix[]): Prefix[] {
  const sorted = [...prefixes].sort(comparePrefixes)
  const out: Prefix[] = []
  let family: Family | undefined
  let start = 0n
  let end = 0n
  for (const prefix of sorted) {
    const pStart = prefix.network
    const pEnd = pStart + prefixSize(prefix)
    if (family === prefix.family && pStart <= end) {
      if (pEnd > end) end = pEnd
      continue
    }
    if (family !== undefined) rangeToPrefixes(family, start, end, out)
    family = prefix.family
    start = pStart
    end = pEnd
  }
  if (family !== undefined) rangeToPrefixes(family, start, end, out)
  return out
}

function compareBigint(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function lowerBound(list: bigint[], value: bigint): number {
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (list[mid]! < value) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * One pool's address space, run as a buddy system: free space is kept as its maximal
 * aligned blocks, one address-sorted list per prefix length. The lowest free aligned
 * block of a size is then the lowest head among the lists of that size or larger, so an
 * allocation costs O(bits + log n) plus one array splice, independent of how fragmented
 * the pool is.
 */
export class AddressSpace {
  readonly family: Family
  readonly addressPrefixes: readonly Prefix[]
  readonly total: bigint
  private readonly bits: number
  // free[length] holds the network addresses of maximal free blocks of that length.
  private readonly free: bigint[][]
  private freeCount = 0n
  // Taken prefixes never overlap, so the network address identifies one.
  private readonly taken = new Map<bigint, number>()

  constructor(prefixes: Prefix[]) {
    const first = prefixes[0]
    if (first === undefined) throw new PrefixError('an address space needs at least one prefix')
    if (prefixes.some((prefix) => prefix.family !== first.family)) {
      throw new PrefixError('an address space cannot mix IPv4 and IPv6 prefixes')
    }
    prefixes.forEach(checkPrefix)
    const sorted = [...prefixes].sort(comparePrefixes)
    for (let i = 1; i < sorted.length; i++) {
      if (overlaps(sorted[i - 1]!, sorted[i]!)) {
        throw new PrefixError(`overlapping prefixes ${formatPrefix(sorted[i - 1]!)} and ${formatPrefix(sorted[i]!)}`)
      }
    }
    this.family = first.family
    this.bits = familyBits(this.family)
    this.free = Array.from({ length: this.bits + 1 }, () => [])
    // Adjacent input prefixes are merged, so a block may straddle two of the pool's prefixes.
    this.addressPrefixes = Object.freeze(mergePrefixes(sorted))
    for (const prefix of this.addressPrefixes) this.freeBlock(prefix.network, prefix.length)
    this.total = this.freeCount
  }

  get available(): bigint {
    return this.freeCount
  }

  allocate(count: bigint): Prefix[] {
    if (count < 1n) throw new RangeError(`address count must be at least 1, got ${count}`)
    if (count > this.freeCount) throw new ExhaustedError(count, this.freeCount)
    const done: Prefix[] = []
    const binary = count.toString(2)
    for (const [i, digit] of [...binary].entries()) {
      if (digit === '0') continue
      const k = binary.length - 1 - i
      const prefix = this.takeLowest(this.bits - k)
      if (prefix === undefined) {
        for (const back of done) this.untake(back)
        throw new ExhaustedError(count, this.freeCount, `, no free block of ${1n << BigInt(k)} addresses left`)
      }
      done.push(prefix)
    }
    return done
  }

  reserve(prefixes: Prefix[]): void {
    const done: Prefix[] = []
    try {
      for (const prefix of prefixes) {
        this.takeExact(prefix)
        done.push(prefix)
      }
    } catch (err) {
      for (const back of done) this.untake(back)
      throw err
    }
  }

  release(prefixes: Prefix[]): void {
    const seen = new Set<bigint>()
    for (const prefix of prefixes) {
      if (
        prefix.family !== this.family ||
        this.taken.get(prefix.network) !== prefix.length ||
        seen.has(prefix.network)
      ) {
        throw new PrefixError(`${formatPrefix(prefix)} is not taken in this address space`)
      }
      seen.add(prefix.network)
    }
    for (const prefix of prefixes) this.untake(prefix)
  }

  isFree(prefix: Prefix): boolean {
    checkPrefix(prefix)
    return prefix.family === this.family && this.findFreeContaining(prefix) !== undefined
  }

  isTaken(prefix: Prefix): boolean {
    return prefix.family === this.family && this.taken.get(prefix.network) === prefix.length
  }

  /** Taken prefixes exactly as allocate/reserve handed them out, sorted. */
  takenList(): Prefix[] {
    return [...this.taken]
      .sort(([a], [b]) => compareBigint(a, b))
      .map(([network, length]) => ({ family: this.family, network, length }))
  }

  usage(): Usage {
    const availablePrefixes: Prefix[] = []
    for (const [length, list] of this.free.entries()) {
      for (const network of list) availablePrefixes.push({ family: this.family, network, length })
    }
    availablePrefixes.sort(comparePrefixes)
    return {
      total: this.total,
      taken: this.total - this.freeCount,
      available: this.freeCount,
      addressPrefixes: [...this.addressPrefixes],
      takenPrefixes: mergePrefixes(this.takenList()),
      availablePrefixes,
    }
  }

  private takeLowest(length: number): Prefix | undefined {
    let bestLength = -1
    let best = 0n
    for (let l = 0; l <= length; l++) {
      const head = this.free[l]![0]
      if (head !== undefined && (bestLength < 0 || head < best)) {
        best = head
        bestLength = l
      }
    }
    if (bestLength < 0) return undefined
    this.free[bestLength]!.shift()
    // Keep the low end; the upper halves split off on the way down stay free.
    for (let l = bestLength + 1; l <= length; l++) this.insertFree(best + blockSize(this.family, l), l)
    return this.markTaken(best, length)
  }

  private takeExact(prefix: Prefix): void {
    checkPrefix(prefix)
    if (prefix.family !== this.family) throw new PrefixError(`${formatPrefix(prefix)} is not IPv${this.family}`)
    const found = this.findFreeContaining(prefix)
    if (found === undefined) {
      if (!this.addressPrefixes.some((outer) => contains(outer, prefix))) {
        throw new PrefixError(`${formatPrefix(prefix)} lies outside the address space`)
      }
      throw new ConflictError(`${formatPrefix(prefix)} overlaps an address range already taken`)
    }
    const [length, index] = found
    this.free[length]!.splice(index, 1)
    // Walking up from the prefix, the sibling at each level is the part of the block left free.
    for (let l = prefix.length; l > length; l--) {
      this.insertFree((prefix.network & ~hostMask(this.family, l)) ^ blockSize(this.family, l), l)
    }
    this.markTaken(prefix.network, prefix.length)
  }

  private findFreeContaining(prefix: Prefix): [number, number] | undefined {
    for (let l = Math.min(prefix.length, this.bits); l >= 0; l--) {
      const network = prefix.network & ~hostMask(this.family, l)
      const list = this.free[l]!
      const index = lowerBound(list, network)
      if (list[index] === network) return [l, index]
    }
    return undefined
  }

  private markTaken(network: bigint, length: number): Prefix {
    this.taken.set(network, length)
    this.freeCount -= blockSize(this.family, length)
    return { family: this.family, network, length }
  }

  private untake(prefix: Prefix): void {
    this.taken.delete(prefix.network)
    this.freeBlock(prefix.network, prefix.length)
  }

  private freeBlock(network: bigint, length: number): void {
    this.freeCount += blockSize(this.family, length)
    // A free buddy is inside the pool by construction, so merging cannot leave it.
    while (length > 0) {
      const buddy = network ^ blockSize(this.family, length)
      const list = this.free[length]!
      const index = lowerBound(list, buddy)
      if (list[index] !== buddy) break
      list.splice(index, 1)
      network &= ~blockSize(this.family, length)
      length--
    }
    this.insertFree(network, length)
  }

  private insertFree(network: bigint, length: number): void {
    const list = this.free[length]!
    list.splice(lowerBound(list, network), 0, network)
  }
}
