/** Labels on every container and image the platform creates, so that a restarted worker or a test can find its own. */
export const LABELS = {
  platform: 'io.faas.platform',
  node: 'io.faas.node',
  function: 'io.faas.function',
  version: 'io.faas.version',
  call: 'io.faas.call',
  role: 'io.faas.role',
  /** The miniworker driving the container: when it dies, its containers are removed by this label. */
  miniworker: 'io.faas.miniworker',
} as const;
