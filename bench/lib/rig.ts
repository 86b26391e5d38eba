import type { DeviceCommands } from '../gen/devices.js'
import type { MqttClientCommands } from '../gen/mqtt-clients.js'
import type { SubscriberCommands } from '../gen/subscriber.js'
import { Worker } from './ipc.js'

/**
 * The load-generating processes, started once and reused for every scenario (each is told its
 * device range and target again): `procs` HyperTCP device generators, as many direct MQTT.js
 * client processes (and raw MQTT client processes), and the one counting subscriber.
 */
export class Rig {
  /** Device generators of the message runs (the first `procs` of {@link allDevices}). */
  readonly devices: Worker<DeviceCommands>[]
  /** Device generators of the scale run (more when the device count needs more descriptors). */
  readonly allDevices: Worker<DeviceCommands>[]
  readonly mqttjs: Worker<MqttClientCommands>[]
  readonly raw: Worker<MqttClientCommands>[]
  readonly subscriber: Worker<SubscriberCommands>

  constructor(procs: number, deviceProcs: number, raw: boolean) {
    const gen = (name: string) => new URL(`../gen/${name}.ts`, import.meta.url)
    this.allDevices = Array.from({ length: Math.max(procs, deviceProcs) }, (_, i) =>
      Worker.start<DeviceCommands>(`devices-${i}`, gen('devices')),
    )
    this.devices = this.allDevices.slice(0, procs)
    this.mqttjs = Array.from({ length: procs }, (_, i) =>
      Worker.start<MqttClientCommands>(`mqttjs-${i}`, gen('mqtt-clients')),
    )
    this.raw = raw
      ? Array.from({ length: procs }, (_, i) =>
          Worker.start<MqttClientCommands>(`raw-${i}`, gen('mqtt-clients')),
        )
      : []
    this.subscriber = Worker.start<SubscriberCommands>('subscriber', gen('subscriber'))
  }

  async stop(): Promise<void> {
    await Promise.all([...this.allDevices, ...this.mqttjs, ...this.raw, this.subscriber].map((w) => w.stop()))
  }
}
