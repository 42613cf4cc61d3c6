import pino from 'pino';

export type Logger = pino.Logger;

/** Structured JSON logs, one line per event, on stdout. */
export function createLogger(name: string, extra: Record<string, unknown> = {}): Logger {
  return pino({
    name,
    level: process.env.FAAS_LOG_LEVEL || 'info',
    base: { pid: process.pid, ...extra },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
