#!/usr/bin/env node
// A console HyperTCP device for trying the gateway by hand (see README.md).
await import('../dist/device-cli.js')
