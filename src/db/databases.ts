import pg from 'pg'

/** Runs `work` on a connection to the server's `postgres` database (CREATE/DROP DATABASE cannot run inside the target). */
async function onServer<T>(connectionString: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const url = new URL(connectionString)
  url.pathname = '/postgres'
  const client = new pg.Client({ connectionString: url.toString() })
  await client.connect()
  try {
    return await work(client)
  } finally {
    await client.end()
  }
}

export function databaseName(connectionString: string): string {
  return decodeURIComponent(new URL(connectionString).pathname.replace(/^\//, ''))
}

export function withDatabase(connectionString: string, database: string): string {
  const url = new URL(connectionString)
  url.pathname = `/${encodeURIComponent(database)}`
  return url.toString()
}

/** Creates the database named in the connection string unless it exists. */
export async function ensureDatabase(connectionString: string): Promise<void> {
  const name = databaseName(connectionString)
  await onServer(connectionString, async (client) => {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])
    if (rowCount) return
    // Another process may create it between the check and here; 42P04 (duplicate_database) means done.
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`).catch((err: { code?: string }) => {
      if (err.code !== '42P04') throw err
    })
  })
}

export async function dropDatabase(connectionString: string): Promise<void> {
  const name = databaseName(connectionString)
  await onServer(connectionString, (client) =>
    client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`),
  )
}
