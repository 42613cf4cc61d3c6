/** Runtime and function names become Docker image names and log keys: keep them boring. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME_PATTERN.test(name);
}

/**
 * The runtime name an image reference gives when no name is given: its last path component, without
 * tag or digest, lower-cased, other characters made dashes (`127.0.0.1:5000/team/Py.Runtime:v1` →
 * `py-runtime`). Undefined when nothing usable is left.
 */
export function nameFromImage(image: string): string | undefined {
  const repo = image.trim().split('@')[0]!;
  const last = repo.slice(repo.lastIndexOf('/') + 1).split(':')[0]!;
  const name = last
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 63)
    .replace(/[-_]+$/, '');
  return isValidName(name) ? name : undefined;
}
