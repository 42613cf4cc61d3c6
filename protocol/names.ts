/** Runtime and function names become Docker image names and log keys: keep them boring. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME_PATTERN.test(name);
}
