/**
 * Topic templates with emqx-tcp's placeholders ([HT-5]): `%c` = device id, `%u` = the device's
 * username (its registry entry's `username`, else its id), `%g` = gateway id, `%%` = a literal `%`.
 * Pure: compiled once at start-up, rendered once per login, never per frame.
 */
import { GatewayError } from '../errors.js'

export type Placeholder = 'c' | 'u' | 'g'

export interface TopicValues {
  readonly c?: string
  readonly u?: string
  readonly g?: string
}

export interface TopicTemplate {
  readonly source: string
  /** Placeholders the template uses. */
  readonly uses: ReadonlySet<Placeholder>
  render(values: TopicValues): string
}

/** An invalid topic template; the message is fit for a config error naming its key. */
export class TemplateError extends GatewayError {
  constructor(message: string) {
    super('HT_ERR_TOPIC_TEMPLATE', message)
    this.name = 'TemplateError'
  }
}

/**
 * Compiles a template, allowing only the placeholders in `allowed`.
 * Throws TemplateError (with a message fit for a config error) for an invalid one.
 */
export function compileTemplate(source: string, allowed: readonly Placeholder[]): TopicTemplate {
  if (source.length === 0) throw new TemplateError('must not be empty')
  if (/[+#\0]/.test(source)) throw new TemplateError('must not contain MQTT wildcards (+, #) or NUL')
  const parts: ({ text: string } | { placeholder: Placeholder })[] = []
  const uses = new Set<Placeholder>()
  let literal = ''
  for (let i = 0; i < source.length; i++) {
    const ch = source[i]
    if (ch !== '%') {
      literal += ch
      continue
    }
    const next = source[++i]
    if (next === '%') {
      literal += '%'
    } else if (next === 'c' || next === 'u' || next === 'g') {
      if (!allowed.includes(next)) throw new TemplateError(`placeholder %${next} is not available here`)
      if (literal) parts.push({ text: literal })
      literal = ''
      parts.push({ placeholder: next })
      uses.add(next)
    } else {
      throw new TemplateError(`unknown placeholder %${next ?? ''} (use %c, %u, %g or %%)`)
    }
  }
  if (literal) parts.push({ text: literal })
  return {
    source,
    uses,
    render(values: TopicValues): string {
      let out = ''
      for (const part of parts) {
        if ('text' in part) {
          out += part.text
          continue
        }
        const value = values[part.placeholder]
        if (value === undefined) throw new TemplateError(`no value for %${part.placeholder} in ${source}`)
        out += value
      }
      return out
    },
  }
}

/** The gateway's own status topic (last will and retained state, [HT-5.4]). */
export function gatewayStatusTopic(template: string, gatewayId: string): string {
  return compileTemplate(template, ['g']).render({ g: gatewayId })
}
