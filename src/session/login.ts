import type { AuthResult } from '../auth/registry.js'
import { Status } from '../protocol/constants.js'
import { isAllowedId } from '../protocol/ids.js'
import type { LoginRequest } from '../protocol/messages.js'
import type { HandlerContext } from './context.js'

/**
 * [HT-3.2] A login, whatever the dialect: admission's word first (a redirect to a peer, a refusal),
 * then the token (`parse` reads the dialect's login body), then the registry or the auth hook. The
 * reply waits for the bridge's `attach`.
 */
export function beginLogin(
  ctx: HandlerContext,
  msgId: number,
  body: Buffer,
  parse: (body: Buffer) => LoginRequest,
): void {
  const gate = ctx.checkLogin()
  switch (gate.action) {
    case 'redirect':
      // [HT-6.4] At capacity or draining: the device is sent to a peer instead of refused.
      ctx.log('info', 'login redirected to a peer gateway', { server: gate.server, port: gate.port })
      ctx.redirect(gate.server, gate.port)
      return
    case 'refuse':
      ctx.log('info', 'login refused before authentication', { reason: gate.reason })
      ctx.refuseLogin(msgId, gate.status, gate.reason)
      return
    case 'proceed':
      break
  }
  const request = parse(body)
  const invalid =
    request.invalid ??
    (request.deviceId !== undefined && !isAllowedId(request.deviceId, ctx.idCharset)
      ? `device_id is not an id (idCharset ${ctx.idCharset})`
      : undefined)
  if (invalid !== undefined) {
    ctx.throttle.warn('login_invalid_body', 'login refused', { reason: invalid, remote: ctx.remote })
    ctx.loginFailed()
    ctx.refuseLogin(msgId, Status.ILLEGAL_COMMAND_BODY, 'invalid_token')
    return
  }
  const result = ctx.authenticate(request)
  if (result instanceof Promise) {
    // The auth hook's answer: nothing more is read meanwhile, and a close (login timeout, the
    // device leaving) settles the login first.
    ctx.awaitAuthentication()
    void result.then((r) => {
      if (ctx.state === 'authenticating') settle(ctx, msgId, request, r)
    })
    return
  }
  settle(ctx, msgId, request, result)
}

function settle(ctx: HandlerContext, msgId: number, request: LoginRequest, result: AuthResult): void {
  if (!result.ok) {
    ctx.throttle.warn(`login_${result.reason}`, 'login refused', {
      reason: result.reason,
      remote: ctx.remote,
      claimedId: request.deviceId,
    })
    // The device's fault only: a hook that could not answer says nothing about its token.
    if (result.reason !== 'auth_unavailable') ctx.loginFailed()
    ctx.refuseLogin(msgId, result.status, result.reason)
    return
  }
  // An id from the auth hook is held to the same characters as a claimed one.
  if (!isAllowedId(result.identity.deviceId, ctx.idCharset)) {
    ctx.throttle.warn('login_bad_id', 'login refused: the granted device id is not an id', {
      deviceId: result.identity.deviceId,
      idCharset: ctx.idCharset,
    })
    ctx.refuseLogin(msgId, Status.NOT_ALLOWED, 'not_allowed')
    return
  }
  ctx.login(msgId, result.identity)
}
