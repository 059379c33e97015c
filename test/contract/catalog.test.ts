import path from 'node:path';
import { SqliteCatalog } from '../../src/catalog/sqlite-catalog.js';
import { tempDir } from '../helpers/gateway.js';
import { catalogContract } from './catalog.contract.js';

catalogContract('sqlite', async () => new SqliteCatalog(path.join(await tempDir(), 'catalog.sqlite')));
catalogContract('sqlite in memory', async () => new SqliteCatalog(':memory:'));
