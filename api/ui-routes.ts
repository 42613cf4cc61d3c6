import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import express, { type Request, type Response } from 'express';
import { PlatformError } from '../protocol/errors';

/** Where `npm run build` puts the dashboard (scripts/build-ui.mjs): dist/ui beside dist/api. */
export const UI_DIR = path.join(__dirname, '..', 'ui');

/**
 * The dashboard: its page and bundled assets are public, like /docs, so that the login form loads
 * before any credentials exist; every call the page makes to the api carries them. The page is the
 * answer for any path below /ui that is not an asset (the dashboard routes by path); `GET /` leads
 * there. The assets' names carry a hash of their content: they are cached for good, the page never.
 */
export function uiRouter(dir: string = UI_DIR): express.Router {
  // Strict: `/ui` and `/ui/` are two paths (the first leads to the second).
  const router = express.Router({ strict: true });
  let page: string | undefined;
  const index = (_req: Request, res: Response) => {
    if (page === undefined) {
      const file = path.join(dir, 'index.html');
      if (!existsSync(file)) throw new PlatformError('NOT_FOUND', 'the dashboard is not built: `npm run build` makes it');
      page = readFileSync(file, 'utf8');
    }
    res.setHeader('Cache-Control', 'no-cache');
    res.type('html').send(page);
  };
  router.get('/', (req, res) => {
    // A GET / of a client that asks for JSON keeps the api's JSON answer.
    if (!req.accepts('html')) throw new PlatformError('NOT_FOUND', 'no such route; the dashboard is at /ui/');
    res.redirect(302, '/ui/');
  });
  router.get('/ui', (_req, res) => res.redirect(301, '/ui/'));
  router.use('/ui/assets', express.static(path.join(dir, 'assets'), { index: false, fallthrough: false, immutable: true, maxAge: '365d' }));
  router.get(/^\/ui\/.*/, index);
  return router;
}
