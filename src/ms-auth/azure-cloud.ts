import { readFile } from 'node:fs/promises'
import tls from 'node:tls'

/** Where Entra ID and ARM are, and how strictly to treat them. */
export interface AzureEndpoints {
  authorityHost: string
  resourceManager: string
  /** Scope of ARM tokens; the same audience in every cloud's ARM front door. */
  armScope: string
  /**
   * False for local endpoints (the emulator): MSAL's instance discovery and Key Vault's check that the
   * challenge names a vault domain only make sense against Microsoft's hosts.
   */
  publicEndpoints: boolean
}

const CLOUDS = {
  AzurePublicCloud: {
    authorityHost: 'https://login.microsoftonline.com',
    resourceManager: 'https://management.azure.com',
  },
  AzureChinaCloud: {
    authorityHost: 'https://login.chinacloudapi.cn',
    resourceManager: 'https://management.chinacloudapi.cn',
  },
  AzureUSGovernment: {
    authorityHost: 'https://login.microsoftonline.us',
    resourceManager: 'https://management.usgovcloudapi.net',
  },
} as const

export type CloudName = keyof typeof CLOUDS

export function azureEndpoints(
  cloud: CloudName,
  overrides: { authorityHost?: string | undefined; resourceManager?: string | undefined } = {},
): AzureEndpoints {
  const base = CLOUDS[cloud]
  const authorityHost = trimSlash(overrides.authorityHost ?? base.authorityHost)
  const resourceManager = trimSlash(overrides.resourceManager ?? base.resourceManager)
  return {
    authorityHost,
    resourceManager,
    armScope: `${trimSlash(base.resourceManager)}/.default`,
    publicEndpoints: authorityHost === base.authorityHost && resourceManager === base.resourceManager,
  }
}

/** Endpoints of a local emulator (one host serves Entra ID and ARM). */
export function localEndpoints(url: string): AzureEndpoints {
  return { ...azureEndpoints('AzurePublicCloud', { authorityHost: url, resourceManager: url }), publicEndpoints: false }
}

/** Trusts one more CA for this process's TLS connections (the emulator's), as production trusts Azure's. */
export async function trustCaFile(file: string): Promise<void> {
  trustCaPem(await readFile(file, 'utf8'))
}

export function trustCaPem(pem: string): void {
  const current = tls.getCACertificates('default')
  if (!current.includes(pem)) tls.setDefaultCACertificates([...current, pem])
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '')
}
