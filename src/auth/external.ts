import type { LoginRequest } from '../protocol/messages.js'
import type { AuthResult } from './registry.js'

/**
 * Authentication by a service of the user's own (EMQX's HTTP auth), asked about tokens the device
 * registry does not know. Implemented by adapters/auth-hook.ts.
 */
export interface ExternalAuth {
  /** Resolves to the device's identity, a refusal, or `auth_unavailable`; never rejects. */
  authenticate(request: LoginRequest, ip: string): Promise<AuthResult>
}
