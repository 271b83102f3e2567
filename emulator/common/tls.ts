import { createHash, randomBytes, webcrypto } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata polyfill.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'

// The Azure SDK and MSAL refuse to send tokens over plain http, so the emulator serves HTTPS with
// its own CA. Generated once into a git-ignored folder and reused, so a trusted CA stays trusted.

export interface TlsMaterial {
  /** PEM file of the CA that signed the server certificate: give it to clients to trust. */
  caFile: string
  ca: string
  cert: string
  key: string
}

/** Names the certificate is valid for. emulator.b2clogin.com lets MSAL Python (the Azure CLI) skip instance discovery. */
export const SERVER_NAMES = ['localhost', 'emulator.b2clogin.com']
const SERVER_IPS = ['127.0.0.1', '::1']

const ALGORITHM: webcrypto.RsaHashedKeyGenParams = {
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 2048,
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY')
}

async function generate(): Promise<Omit<TlsMaterial, 'caFile'>> {
  x509.cryptoProvider.set(webcrypto)
  const now = Date.now()
  const caKeys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=ipam-broker Azure emulator local CA',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 10 * 365 * 86_400_000),
    keys: caKeys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  })
  const serverKeys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])
  const serverCert = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: 'CN=localhost',
    issuer: caCert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 825 * 86_400_000),
    publicKey: serverKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...SERVER_NAMES.map((value) => ({ type: 'dns' as const, value })),
        ...SERVER_IPS.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  })
  return {
    ca: caCert.toString('pem'),
    cert: serverCert.toString('pem'),
    key: await privateKeyPem(serverKeys.privateKey),
  }
}

/** A self-signed client certificate for an app registration (certificate credentials). */
export async function generateClientCertificate(commonName: string) {
  x509.cryptoProvider.set(webcrypto)
  const now = Date.now()
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex'),
    name: `CN=${commonName}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 365 * 86_400_000),
    keys,
    signingAlgorithm: ALGORITHM,
  })
  const der = Buffer.from(certificate.rawData)
  return {
    certificatePem: certificate.toString('pem'),
    privateKeyPem: await privateKeyPem(keys.privateKey),
    sha1: createHash('sha1').update(der).digest('base64url'),
    sha256: createHash('sha256').update(der).digest('base64url'),
  }
}

/** Loads the CA and server certificate from `dir`, generating them on first use. */
export async function ensureTls(dir: string): Promise<TlsMaterial> {
  const files = {
    ca: path.join(dir, 'ca.pem'),
    cert: path.join(dir, 'server.pem'),
    key: path.join(dir, 'server-key.pem'),
  }
  if (!Object.values(files).every(existsSync)) {
    const material = await generate()
    await mkdir(dir, { recursive: true })
    await writeFile(files.ca, material.ca)
    await writeFile(files.cert, material.cert)
    await writeFile(files.key, material.key, { mode: 0o600 })
  }
  const [ca, cert, key] = await Promise.all([files.ca, files.cert, files.key].map((file) => readFile(file, 'utf8')))
  return { caFile: files.ca, ca: ca!, cert: cert!, key: key! }
}

/**
 * Adds the emulator's CA to this process's default trust store, as NODE_EXTRA_CA_CERTS would at
 * start-up (the broker's own AZURE_CA_FILE mechanism): the Azure SDK, MSAL and fetch then accept the
 * emulator like any Azure endpoint.
 */
export { trustCaPem as trustCa } from '../../src/ms-auth/azure-cloud.ts'
