import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Pki {
  readonly dir: string
  /** Path of the CA certificate, and its PEM. */
  readonly ca: string
  readonly caPem: Buffer
  /** Two server certificates for 127.0.0.1/localhost (the second for reload tests). */
  readonly server: { cert: string; key: string }
  readonly server2: { cert: string; key: string }
  /** A client certificate signed by the CA. */
  readonly client: { cert: string; key: string }
}

/** A throwaway PKI made with the openssl command line: a CA, server and client certificates. */
export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'htgw-pki-'))
  const p = (name: string) => join(dir, name)
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=htgw-test-ca',
  )
  const issue = (name: string, cn: string, ext: string) => {
    writeFileSync(p(`${name}.ext`), ext)
    openssl('req', ...ec, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', `/CN=${cn}`)
    openssl(
      'x509',
      '-req',
      '-in',
      p(`${name}.csr`),
      '-CA',
      p('ca.pem'),
      '-CAkey',
      p('ca.key'),
      '-CAcreateserial',
      '-out',
      p(`${name}.pem`),
      '-days',
      '2',
      '-extfile',
      p(`${name}.ext`),
    )
    return { cert: p(`${name}.pem`), key: p(`${name}.key`) }
  }
  const serverExt = 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'
  return {
    dir,
    ca: p('ca.pem'),
    caPem: readFileSync(p('ca.pem')),
    server: issue('server', 'localhost', serverExt),
    server2: issue('server2', 'localhost', serverExt),
    client: issue('client', 'dev-1', 'extendedKeyUsage=clientAuth\n'),
  }
}
