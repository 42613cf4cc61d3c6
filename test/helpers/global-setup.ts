import Docker from 'dockerode';
import { ensureRuntimeImages } from '../../cli/actions/images';

/** The suite runs against a real Docker engine and the project's runtime images. */
export default async function globalSetup(): Promise<void> {
  try {
    await new Docker().ping();
  } catch {
    throw new Error(`No Docker engine answers (${process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock'}): the integration tests need one; the unit tests do not (npx jest test/unit).`);
  }
  await ensureRuntimeImages({ say: (line) => process.stdout.write(`\n${line}\n`) });
}
