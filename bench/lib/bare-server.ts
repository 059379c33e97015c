/**
 * The framework's ceiling for the metadata figures: a bare fastify server (no logger, no schema,
 * no catalog) answering GET /file and GET /list with the constant JSON bodies it is given on
 * stdin, the same bodies the gateway sends. Prints {"address": ...} once listening.
 */
import Fastify from 'fastify';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const bodies = JSON.parse(input) as { file: unknown; list: unknown };

const app = Fastify();
app.get('/file', async () => bodies.file);
app.get('/list', async () => bodies.list);
const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`${JSON.stringify({ address })}\n`);
process.once('SIGTERM', () => void app.close());
