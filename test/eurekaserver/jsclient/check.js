// Drives eureka-js-client (4.5.0, a client written by others) against a
// Eureka server for test/eurekaserver/jsclient_test.go. It reads commands on
// stdin, one per line, and answers "ok CMD" or "err CMD: reason":
//   start                 register and start heartbeats and registry fetches
//   heartbeat             wait for the next successful heartbeat
//   wait-app APP N        wait until the client's registry has N UP instances of APP
//   status VALUE          override this instance's status (PUT .../status?value=)
//   stop                  deregister
// Usage: node check.js HOST PORT INSTANCE-JSON
'use strict';
const Eureka = require('eureka-js-client').Eureka;
const readline = require('readline');

const [host, port, instanceJSON] = process.argv.slice(2);
const instance = JSON.parse(instanceJSON);
const logger = { debug() {}, info() {}, warn() {}, error() {} };
const client = new Eureka({
  instance,
  eureka: { host, port: Number(port), servicePath: '/eureka/v2/apps/', heartbeatInterval: 200, registryFetchInterval: 200, maxRetries: 0 },
  shouldUseDelta: true,
  logger,
});

function reply(line) { process.stdout.write(line + '\n'); }

const handlers = {
  start(done) { client.start((err) => done(err)); },
  heartbeat(done) { client.once('heartbeat', () => done()); },
  'wait-app'(done, app, n) {
    const deadline = Date.now() + 15000;
    (function poll() {
      // A MODIFIED delta replaces an instance whatever its status (the
      // client filters only on full fetches), so count the UP ones.
      const got = client.getInstancesByAppId(app).filter((i) => i.status === 'UP').length;
      if (got === Number(n)) return done();
      if (Date.now() > deadline) return done(new Error(`${app}: ${got} instances, want ${n}`));
      setTimeout(poll, 50);
    })();
  },
  status(done, value) {
    client.eurekaRequest({ method: 'PUT', uri: `${instance.app}/${client.instanceId}/status?value=${value}` }, (err, res) => {
      if (err) return done(err);
      if (res.statusCode !== 200) return done(new Error(`status ${res.statusCode}`));
      done();
    });
  },
  stop(done) { client.stop((err) => done(err)); },
};

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, ...args] = line.trim().split(/\s+/);
  const h = handlers[cmd];
  if (!h) return reply(`err ${cmd}: unknown command`);
  h((err) => reply(err ? `err ${cmd}: ${err.message}` : `ok ${cmd}`), ...args);
});
rl.on('close', () => process.exit(0));
