import net from 'node:net'
const N = 100, ACKS = 3, ROUNDS = 20000
const srv = net.createServer(s => { s.on('data', () => {}) })
await new Promise(r => srv.listen(0, '127.0.0.1', r))
const socks = await Promise.all(Array.from({length:N}, () => new Promise(r => { const c = net.connect(srv.address().port, '127.0.0.1', () => r(c)); c.setNoDelay(true) })))
function ack(i){ const b = Buffer.allocUnsafe(7); b.writeUInt32BE(i,0); b[4]=0;b[5]=1;b[6]=2; return b }
const stage = Buffer.allocUnsafe(64)
async function run(mode){
  const t0 = process.cpuUsage()
  for (let r=0;r<ROUNDS/100;r++){
    for (const s of socks){
      if (mode==='cork'){ s.cork(); for(let a=0;a<ACKS;a++) s.write(ack(a)); s.uncork() }
      else { let o=0; for(let a=0;a<ACKS;a++){ stage.writeUInt32BE(a,o); stage[o+4]=0;stage[o+5]=1;stage[o+6]=2;o+=7 } s.write(Buffer.from(stage.subarray(0,o))) }
    }
    await new Promise(r=>setImmediate(r))
  }
  const u = process.cpuUsage(t0); return ((u.user+u.system)/(ROUNDS/100*N)).toFixed(2)
}
for (let i=0;i<3;i++) console.log('cork', await run('cork'), 'stage', await run('stage'), 'µs per flush of', ACKS)
process.exit(0)
