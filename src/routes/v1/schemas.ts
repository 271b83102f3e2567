import { Type } from 'typebox'

// Shapes shared by the /v1 routes. Bounds follow Azure's own rules, so a bad value is refused here
// with a clear message instead of by ARM after the request has been queued.

const GUID = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
const ARM_NAME = '[A-Za-z0-9][A-Za-z0-9_.-]{0,78}[A-Za-z0-9_]'
const RESOURCE_GROUP = '[-\\w.()]{0,89}[-\\w()]'

export const GuidSchema = Type.String({
  pattern: GUID,
  description: 'A GUID',
  examples: ['b1b1b1b1-0000-4000-8000-0000000000b1'],
})

export const ResourceGroupSchema = Type.String({
  pattern: `^${RESOURCE_GROUP}$`,
  description: "Resource group name (1-90 letters, digits, '-', '_', '.', '(', ')'; not ending in '.')",
})

export const VnetNameSchema = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}[A-Za-z0-9_]$',
  description:
    "VNet name: 2-64 letters, digits, '_', '.', '-'; starts with a letter or digit, ends with a letter, digit or '_'",
})

export const LocationSchema = Type.String({
  pattern: '^[A-Za-z][A-Za-z0-9]{1,39}$',
  description: 'Azure region, e.g. westeurope',
})

export const PoolIdSchema = Type.String({
  pattern: `^/subscriptions/${GUID.slice(1, -1)}/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft\\.Network/networkManagers/${ARM_NAME}/ipamPools/${ARM_NAME}$`,
  description: 'ARM id of an IPAM pool',
  examples: [
    '/subscriptions/a1a1a1a1-0000-4000-8000-0000000000a1/resourceGroups/rg-network-management/providers/Microsoft.Network/networkManagers/nm-contoso/ipamPools/pool-retail',
  ],
})

export const NetworkManagerIdSchema = Type.String({
  pattern: `^/subscriptions/${GUID.slice(1, -1)}/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft\\.Network/networkManagers/${ARM_NAME}$`,
  description: 'ARM id of a network manager',
})

export const NetworkGroupSchema = Type.String({
  pattern: `^(${ARM_NAME}|/subscriptions/${GUID.slice(1, -1)}/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft\\.Network/networkManagers/${ARM_NAME}/networkGroups/${ARM_NAME})$`,
  description: "A network group of the management tenant's network manager: its name or its ARM id",
})

/** Addresses asked for: ARM takes a decimal string (IPv6 sizes exceed 2^53); a JSON integer is accepted too. */
export const SizeSchema = Type.Union(
  [Type.String({ pattern: '^[1-9][0-9]{0,38}$' }), Type.Integer({ minimum: 1, maximum: 2 ** 53 - 1 })],
  {
    description: 'Number of IP addresses, as a decimal string (or integer)',
  },
)

// Free text is stored in Postgres text and jsonb, which cannot hold U+0000 (the write fails); the other C0
// controls, bar tab and line breaks, only ever arrive to forge log or terminal output.
const FREE_TEXT = '^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F]*$'

export const DisplayNameSchema = Type.String({ minLength: 1, maxLength: 256, pattern: FREE_TEXT })

export const DescriptionSchema = Type.String({ maxLength: 512, pattern: FREE_TEXT })

// A record's key schema becomes patternProperties, which only constrains keys that match: without
// additionalProperties: false, any other tag name would pass unchecked.
export const TagsSchema = Type.Record(
  Type.String({ pattern: '^[^<>%&\\\\?/\\x00-\\x1F\\x7F]{1,512}$' }),
  Type.String({ maxLength: 256, pattern: FREE_TEXT }),
  {
    maxProperties: 50,
    additionalProperties: false,
    description: 'Azure tags (at most 50); names of 1-512 characters without < > % & \\ ? / or control characters',
  },
)

export const LabelSchema = Type.String({ minLength: 1, maxLength: 128, pattern: '^[\\x20-\\x7E]+$' })

export const IdempotencyKeyHeaderSchema = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: '^[\\x21-\\x7E]+$',
      description: 'Same key and same body → the same operation; same key and another body → 422',
    }),
  ),
})
