import Docker from 'dockerode';

/** After the suite, no container made by a test platform (label io.faas.platform=t…) is left. */
export default async function globalTeardown(): Promise<void> {
  const left = (await new Docker().listContainers({ all: true, filters: { label: ['io.faas.platform'] } })).filter((c) =>
    /^t[0-9a-f]{8}$/.test(c.Labels['io.faas.platform'] ?? ''),
  );
  if (left.length > 0) {
    throw new Error(`containers left behind by the suite: ${left.map((c) => `${c.Id.slice(0, 12)} ${JSON.stringify(c.Labels)}`).join(', ')}`);
  }
}
