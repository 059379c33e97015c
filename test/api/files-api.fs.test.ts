import { filesApiSuite, fsBackend } from './files-api.suite.js';

filesApiSuite(fsBackend);
