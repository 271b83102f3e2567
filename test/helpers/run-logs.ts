import type { ChildProcess } from 'node:child_process'
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs'
import path from 'node:path'
import { Writable } from 'node:stream'
import { RUN_DIR_VARIABLE } from '../../emulator/common/secret-record.ts'

// Every log a broker writes during `npm test` is also kept, as raw text, in the run's logs folder
// (IPAM_TEST_RUN_DIR, made by test/global-setup.ts), where the teardown looks for leaked secrets.

let files = 0

/** Appends bytes to a new file of the run's logs folder, named after the test file; nothing outside `npm test`. */
export function runLogFile(name: string): { write(data: Uint8Array): void; close(): void } {
  const runDir = process.env[RUN_DIR_VARIABLE]
  if (!runDir) return { write: () => undefined, close: () => undefined }
  const dir = path.join(runDir, 'logs')
  mkdirSync(dir, { recursive: true })
  const testFile = path.basename(process.argv[1] ?? 'unknown')
  let fd: number | undefined = openSync(path.join(dir, `${testFile}.${process.pid}.${++files}.${name}.log`), 'a')
  return {
    // Synchronous, as a test process may exit (or a broker be killed) right after the last line.
    write: (data) => void (fd !== undefined && writeSync(fd, data)),
    close: () => {
      if (fd !== undefined) closeSync(fd)
      fd = undefined
    },
  }
}

/**
 * A pino destination that keeps each line, parsed, for assertions and appends it to the run's logs. The
 * file stays open for the life of the process: a broker may still log while it is being closed.
 */
export function capturedLog(name: string): { logs: Record<string, unknown>[]; stream: Writable } {
  const logs: Record<string, unknown>[] = []
  const file = runLogFile(name)
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      file.write(chunk)
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  return { logs, stream }
}

/**
 * Appends what a child process (a broker started by a test) prints to the run's logs, stdout and stderr
 * apart: the leak scan tells `npm start`'s demo banner, on stdout, from log lines.
 */
export function keepChildOutput(child: ChildProcess): void {
  const stdout = runLogFile('process.stdout')
  const stderr = runLogFile('process.stderr')
  child.stdout?.on('data', (chunk: Buffer) => stdout.write(chunk))
  child.stderr?.on('data', (chunk: Buffer) => stderr.write(chunk))
  child.on('close', () => {
    stdout.close()
    stderr.close()
  })
}
