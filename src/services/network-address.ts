import ipaddr from 'ipaddr.js'
import { ProblemError } from './errors.ts'

// Addresses and prefixes as callers write them in queries, checked before they reach Postgres's
// inet type (whose own error would be a 500). Only the plain forms: dotted-quad IPv4 and IPv6
// without a zone, as ARM writes them.

function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text)
  if (text.includes(':') && !text.includes('%') && ipaddr.IPv6.isValid(text)) return ipaddr.IPv6.parse(text)
  return undefined
}

/** An IPv4 or IPv6 address, normalised (e.g. 10.1.2.3, fd00::1). */
export function parseIpAddress(text: string, parameter: string): string {
  const address = parseAddress(text)
  if (!address) {
    throw new ProblemError(
      400,
      'invalid-ip-address',
      'Invalid IP address',
      `${parameter} must be an IPv4 address (e.g. 10.1.2.3) or an IPv6 address (e.g. fd00::1); got '${text.slice(0, 64)}'.`,
    )
  }
  return address.toString()
}

/** A network prefix in CIDR notation with no host bits set (10.20.0.0/22, fd00:1::/64). */
export function parseCidr(text: string, parameter: string): string {
  const slash = text.indexOf('/')
  const address = slash > 0 ? parseAddress(text.slice(0, slash)) : undefined
  const lengthText = slash > 0 ? text.slice(slash + 1) : ''
  const max = address?.kind() === 'ipv4' ? 32 : 128
  const length = /^[0-9]{1,3}$/.test(lengthText) ? Number(lengthText) : NaN
  if (!address || !(length <= max)) {
    throw new ProblemError(
      400,
      'invalid-cidr',
      'Invalid CIDR prefix',
      `${parameter} must be a prefix in CIDR notation, e.g. 10.20.0.0/22 or fd00:1::/64; got '${text.slice(0, 64)}'.`,
    )
  }
  const family = address.kind() === 'ipv4' ? ipaddr.IPv4 : ipaddr.IPv6
  const network = family.networkAddressFromCIDR(`${address.toString()}/${length}`)
  if (network.toString() !== address.toString()) {
    throw new ProblemError(
      400,
      'invalid-cidr',
      'Invalid CIDR prefix',
      `${parameter} ${text} has host bits set; the network is ${network.toString()}/${length}.`,
    )
  }
  return `${network.toString()}/${length}`
}

/** A prefix as ARM or Postgres writes it, in one spelling (IPv6 compressed; a bare address as /32 or /128). */
export function canonicalPrefix(text: string): string {
  const [address, length] = text.split('/', 2) as [string, string?]
  const parsed = parseAddress(address)
  if (!parsed) return text.toLowerCase()
  return `${parsed.toString()}/${length ?? (parsed.kind() === 'ipv4' ? 32 : 128)}`
}

/** Whether prefix `inner` lies within prefix `outer` (both canonical CIDR; different families never do). */
export function prefixWithin(inner: string, outer: string): boolean {
  const [innerAddress, innerLength] = ipaddr.parseCIDR(inner)
  const [outerAddress, outerLength] = ipaddr.parseCIDR(outer)
  return (
    innerAddress.kind() === outerAddress.kind() &&
    innerLength >= outerLength &&
    (innerAddress.kind() === 'ipv4'
      ? (innerAddress as ipaddr.IPv4).match(outerAddress, outerLength)
      : (innerAddress as ipaddr.IPv6).match(outerAddress, outerLength))
  )
}

/** Addresses in a canonical CIDR prefix. */
export function prefixSize(prefix: string): bigint {
  const [address, length] = ipaddr.parseCIDR(prefix)
  return 1n << BigInt((address.kind() === 'ipv4' ? 32 : 128) - length)
}
