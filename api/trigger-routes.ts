import { PlatformError } from '../protocol/errors';
import { cronTriggerInputSchema } from '../protocol/schemas';
import type { ApiConfig } from './config';
import type { Platform } from './platform';
import { checkParamsDepth, nameParam, zodMessage } from './requests';
import type { Handlers } from './routes';

export type TriggerOperation = 'createTrigger' | 'listTriggers' | 'getTrigger' | 'deleteTrigger';

/** Cron triggers under /v1/triggers: create or replace, list, one, remove (api/cron-triggers.ts keeps time). */
export function triggerHandlers(platform: Platform, config: ApiConfig): Pick<Handlers, TriggerOperation> {
  return {
    createTrigger: async (req, res) => {
      const parsed = cronTriggerInputSchema.safeParse(req.body ?? {});
      if (!parsed.success) throw new PlatformError('BAD_REQUEST', zodMessage(parsed.error));
      checkParamsDepth(parsed.data.params, config.maxParamsDepth);
      const { created, trigger } = await platform.putTrigger(parsed.data);
      res.status(created ? 201 : 200).json(platform.describeTrigger(trigger));
    },

    listTriggers: async (_req, res) => {
      res.json((await platform.db.listTriggers()).map((t) => platform.describeTrigger(t)));
    },

    getTrigger: async (req, res) => {
      const name = nameParam(req, 'trigger');
      const trigger = await platform.db.getTrigger(name);
      if (!trigger) throw new PlatformError('TRIGGER_NOT_FOUND', `no trigger named "${name}"`);
      res.json(platform.describeTrigger(trigger));
    },

    deleteTrigger: async (req, res) => {
      await platform.removeTrigger(nameParam(req, 'trigger'));
      res.status(204).end();
    },
  };
}
