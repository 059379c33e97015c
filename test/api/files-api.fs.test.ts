import { filesApiSuite } from './files-api.suite.js';

filesApiSuite('fs');
