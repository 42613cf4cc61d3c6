import { PlatformError } from '../protocol/errors';
import { secretInputSchema } from '../protocol/schemas';
import type { Platform } from './platform';
import { nameParam, zodMessage } from './requests';
import type { Handlers } from './routes';

export type SecretOperation = 'createSecret' | 'listSecrets' | 'getSecret' | 'deleteSecret';

/**
 * Secrets under /v1/secrets: a value goes in once and never comes out of any route; what is told is its
 * name, its times and the functions that use it.
 */
export function secretHandlers(platform: Platform): Pick<Handlers, SecretOperation> {
  const usedBy = async () => {
    const users = new Map<string, string[]>();
    for (const fn of await platform.db.listFunctions()) for (const name of fn.secrets ?? []) users.set(name, [...(users.get(name) ?? []), fn.functionName]);
    return users;
  };
  return {
    createSecret: async (req, res) => {
      const parsed = secretInputSchema.safeParse(req.body ?? {});
      // The message names the field, never the value.
      if (!parsed.success) throw new PlatformError('BAD_REQUEST', zodMessage(parsed.error));
      const { created, secret } = await platform.putSecret(parsed.data.name, parsed.data.value);
      res.status(created ? 201 : 200).json(secret);
    },

    listSecrets: async (_req, res) => {
      const users = await usedBy();
      res.json((await platform.db.listSecrets()).map((s) => ({ ...s, usedBy: users.get(s.name) ?? [] })));
    },

    getSecret: async (req, res) => {
      const name = nameParam(req, 'secret');
      const secret = await platform.db.getSecret(name);
      if (!secret) throw new PlatformError('SECRET_NOT_FOUND', `no secret named "${name}"`);
      res.json({ ...secret, usedBy: (await usedBy()).get(name) ?? [] });
    },

    deleteSecret: async (req, res) => {
      const { deleted } = await platform.db.deleteSecret(nameParam(req, 'secret'));
      if (!deleted) throw new PlatformError('SECRET_NOT_FOUND', `no secret named "${String(req.params.name)}"`);
      res.status(204).end();
    },
  };
}
