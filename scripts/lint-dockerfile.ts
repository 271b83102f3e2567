// `npm run lint:dockerfile`: checks the Dockerfile with dockerfile-utils (the validator behind VS Code's
// Docker extension), since no Docker engine or hadolint is at hand. Any error or warning fails.
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { validate } from 'dockerfile-utils'

export const DOCKERFILE = fileURLToPath(new URL('../Dockerfile', import.meta.url))

export interface DockerfileProblem {
  line: number
  column: number
  severity: 'error' | 'warning' | 'information' | 'hint'
  message: string
}

// The Language Server Protocol's DiagnosticSeverity numbers, which validate() reports.
const SEVERITY = { 1: 'error', 2: 'warning', 3: 'information', 4: 'hint' } as const

export async function dockerfileProblems(file = DOCKERFILE): Promise<DockerfileProblem[]> {
  return validate(await readFile(file, 'utf8'))
    .map((diagnostic) => ({
      line: diagnostic.range.start.line + 1,
      column: diagnostic.range.start.character + 1,
      severity: SEVERITY[diagnostic.severity ?? 1],
      message: typeof diagnostic.message === 'string' ? diagnostic.message : diagnostic.message.value,
    }))
    .sort((a, b) => a.line - b.line || a.column - b.column)
}

if (import.meta.main) {
  const file = process.argv[2] ?? DOCKERFILE
  const problems = await dockerfileProblems(file)
  for (const { line, column, severity, message } of problems) {
    console.log(`${file}:${line}:${column} ${severity}: ${message}`)
  }
  const failing = problems.filter((problem) => problem.severity === 'error' || problem.severity === 'warning')
  console.log(failing.length ? `${failing.length} problem(s)` : `${file}: no problems`)
  if (failing.length) process.exitCode = 1
}
