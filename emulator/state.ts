import { randomBytes, randomUUID } from 'node:crypto'
import { NetworkState } from './arm/network-state.ts'
import { Rbac } from './arm/rbac.ts'
import { recordSecret } from './common/secret-record.ts'

// The emulator's world, in memory. Services read and change it through these records only, so a
// snapshot or another store can stand behind the same shapes later.

export type SignInAudience = 'AzureADMyOrg' | 'AzureADMultipleOrgs'

export interface Tenant {
  id: string
  displayName: string
}

export interface Subscription {
  id: string
  tenantId: string
  displayName: string
}

export interface ResourceGroup {
  subscriptionId: string
  name: string
  location: string
  tags: Record<string, string>
}

export interface PasswordCredential {
  keyId: string
  displayName: string
  secretText: string
  hint: string
  endDateTime: Date
}

/** A certificate registered on an app (keyCredentials): the public part, and for tests the key. */
export interface ClientCertificate {
  certificatePem: string
  privateKeyPem: string
  /** Base64url SHA-1 and SHA-256 thumbprints of the DER certificate (x5t, x5t#S256). */
  sha1: string
  sha256: string
}

export interface Application {
  appId: string
  objectId: string
  homeTenantId: string
  displayName: string
  signInAudience: SignInAudience
  identifierUris: string[]
  /** App roles this application (as an API) defines, by value. */
  appRoles: string[]
  passwords: PasswordCredential[]
  certificates: ClientCertificate[]
}

export interface ServicePrincipal {
  objectId: string
  appId: string
  tenantId: string
}

/** Which roles of an API app a client app holds (the app-role assignments of Entra). */
export interface AppRoleAssignment {
  clientAppId: string
  resourceAppId: string
  roles: string[]
}

export interface SecretVersion {
  version: string
  value: string
  enabled: boolean
  created: Date
  updated: Date
  expires?: Date
  notBefore?: Date
  contentType?: string
  tags?: Record<string, string>
}

export interface Vault {
  name: string
  tenantId: string
  /** appIds allowed to read and write secrets (Key Vault Secrets Officer, in effect). */
  secretOfficers: string[]
  secrets: Map<string, SecretVersion[]>
}

export class EmulatorState {
  readonly tenants = new Map<string, Tenant>()
  readonly subscriptions = new Map<string, Subscription>()
  readonly applications = new Map<string, Application>()
  readonly servicePrincipals: ServicePrincipal[] = []
  readonly appRoleAssignments: AppRoleAssignment[] = []
  readonly vaults = new Map<string, Vault>()
  /** Keyed by lower-cased "subscriptionId/name": resource group names are case-insensitive. */
  readonly resourceGroups = new Map<string, ResourceGroup>()
  readonly rbac = new Rbac()
  readonly network = new NetworkState()
  /** How long ARM's long-running operations stay InProgress (0 for fast tests, seconds for realism). */
  lroDurationMs = 0
  /** What the admin API reports: token requests per "tenant/appId", secret reads per "vault/name". */
  readonly counters = { tokenRequests: new Map<string, number>(), secretReads: new Map<string, number>() }
  /** Moves with the wall clock; tests may shift it to expire tokens and secrets. */
  clockOffsetMs = 0

  now(): Date {
    return new Date(Date.now() + this.clockOffsetMs)
  }

  resourceGroup(subscriptionId: string, name: string): ResourceGroup | undefined {
    return this.resourceGroups.get(`${subscriptionId}/${name}`.toLowerCase())
  }

  putResourceGroup(group: ResourceGroup): void {
    this.resourceGroups.set(`${group.subscriptionId}/${group.name}`.toLowerCase(), group)
  }

  count(counter: Map<string, number>, key: string): void {
    counter.set(key, (counter.get(key) ?? 0) + 1)
  }

  servicePrincipal(appId: string, tenantId: string): ServicePrincipal | undefined {
    return this.servicePrincipals.find((sp) => sp.appId === appId && sp.tenantId === tenantId)
  }

  addPassword(app: Application, displayName = 'emulator'): PasswordCredential {
    // Entra's secrets are 40 characters from a URL-safe alphabet, with a three-character hint.
    const secretText = randomBytes(30).toString('base64url')
    const password: PasswordCredential = {
      keyId: randomUUID(),
      displayName,
      secretText,
      hint: secretText.slice(0, 3),
      endDateTime: new Date(this.now().getTime() + 2 * 365 * 86_400_000),
    }
    app.passwords.push(password)
    recordSecret('app-password', secretText)
    return password
  }

  setSecret(
    vault: Vault,
    name: string,
    value: string,
    options: Partial<Omit<SecretVersion, 'version' | 'value'>> = {},
  ) {
    const now = this.now()
    const version: SecretVersion = {
      version: randomUUID().replaceAll('-', ''),
      value,
      enabled: options.enabled ?? true,
      created: now,
      updated: now,
      ...(options.expires && { expires: options.expires }),
      ...(options.notBefore && { notBefore: options.notBefore }),
      ...(options.contentType && { contentType: options.contentType }),
      ...(options.tags && { tags: options.tags }),
    }
    const versions = vault.secrets.get(name) ?? []
    versions.push(version)
    vault.secrets.set(name, versions)
    recordSecret('vault-secret', value)
    return version
  }
}
