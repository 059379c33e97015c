import path from 'node:path';
import { filesUnder } from '../helpers/gateway.js';
import { uploadsApiSuite } from './uploads-api.suite.js';

uploadsApiSuite({
  name: 'fs',
  leftovers: async (gw) => [
    ...(await filesUnder(path.join(gw.dataDir, 'uploads'))),
    ...(await filesUnder(path.join(gw.dataDir, 'tmp'))),
  ],
  bigBytes: 1024 * 1024 * 1024,
});
