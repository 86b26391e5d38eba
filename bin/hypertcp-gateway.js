#!/usr/bin/env node
// The installed command. The TypeScript sources are compiled to dist/ by `npm run build`.
await import('../dist/cli.js')
