import { createServer, type Server } from 'node:net'
import { Aedes } from 'aedes'

/** An Aedes broker on 127.0.0.1 and a free port, used as an external broker (MQTT 3.1.1 only). */
export async function externalAedes(
  options: Parameters<typeof Aedes.createBroker>[0] = {},
): Promise<{ url: string; close(): Promise<void> }> {
  const aedes = await Aedes.createBroker(options)
  const server: Server = createServer(aedes.handle)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`,
    async close() {
      await new Promise<void>((resolve) => aedes.close(() => resolve()))
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
