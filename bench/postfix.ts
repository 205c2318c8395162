// A private Postfix instance for the comparison, when Postfix is installed (`.ci/run` does not need it;
// `apt-get install postfix` adds it): its own config and queue directories under the bench's temporary
// folder, smtpd on a loopback port, and sender-dependent relaying of the bench tenant's mail to the same
// sink the relay uses. Postfix fsyncs a queue file before its 250, like the relay's queue mode.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, treeCpuSeconds, waitForPort } from './processes.js';

export interface PostfixInstance {
  readonly port: number;
  readonly version: string;
  /** CPU seconds of every Postfix process so far (the master, and each process it ran). */
  cpuSeconds(): number;
  stop(): void;
}

const POSTFIX = '/usr/sbin/postfix';
const DEFAULT_MAIN_CF = '/etc/postfix/main.cf';
const DEBIAN_MAIN_CF = '/usr/share/postfix/main.cf.debian';

export function postfixInstalled(): boolean {
  return fs.existsSync(POSTFIX) && process.getuid?.() === 0;
}

/** A fixed place, so that the one line added to the default main.cf stays one line over many runs. */
const DIR = path.join(os.tmpdir(), 'tenant-relay-bench-postfix');

export async function startPostfix(sinkPort: number): Promise<PostfixInstance> {
  const dir = DIR;
  const port = await freePort();
  // A previous run that was interrupted may have left its instance running.
  if (fs.existsSync(path.join(dir, 'etc', 'main.cf'))) {
    try {
      execFileSync(POSTFIX, ['-c', path.join(dir, 'etc'), 'stop'], { stdio: 'ignore' });
    } catch {
      // not running
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  const config = path.join(dir, 'etc');
  const queue = path.join(dir, 'queue');
  for (const d of [config, queue, path.join(dir, 'data')]) fs.mkdirSync(d, { recursive: true });
  // Postfix's own rules: its data directory belongs to mail_owner, and `postfix -c DIR` works only for a
  // directory the default main.cf lists in alternate_config_directories. A Postfix installed without
  // being configured (apt-get in a container: no main.cf) gets Debian's default one first.
  execFileSync('chown', ['postfix', path.join(dir, 'data')]);
  if (!fs.existsSync(DEFAULT_MAIN_CF) && fs.existsSync(DEBIAN_MAIN_CF)) fs.copyFileSync(DEBIAN_MAIN_CF, DEFAULT_MAIN_CF);
  const listed = execFileSync('/usr/sbin/postconf', ['-h', 'alternate_config_directories']).toString().trim();
  if (!listed.split(/[\s,]+/).includes(config)) execFileSync('/usr/sbin/postconf', ['-e', `alternate_config_directories = ${[listed, config].filter(Boolean).join(' ')}`]);
  // The Debian master.cf with chroot off (a private queue has no chroot set up) and smtpd on our port.
  const master = fs
    .readFileSync('/etc/postfix/master.cf', 'utf8')
    .split('\n')
    .map((line) => {
      if (/^smtp\s+inet\s/.test(line)) return `127.0.0.1:${port} inet n - n - - smtpd`;
      const fields = line.split(/\s+/);
      if (/^[a-z]/.test(line) && fields.length >= 8 && fields[4] === 'y') fields[4] = 'n';
      return /^[a-z]/.test(line) ? fields.join(' ') : line;
    })
    .join('\n');
  fs.writeFileSync(path.join(config, 'master.cf'), master);
  const sink = `[127.0.0.1]:${sinkPort}`;
  fs.writeFileSync(
    path.join(config, 'main.cf'),
    [
      'compatibility_level = 3.6',
      `queue_directory = ${queue}`,
      `data_directory = ${path.join(dir, 'data')}`,
      'mail_owner = postfix',
      'setgid_group = postdrop',
      'myhostname = bench.postfix.localhost',
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'mydestination =',
      'mynetworks = 127.0.0.0/8',
      'smtpd_relay_restrictions = permit_mynetworks, reject',
      `relayhost = ${sink}`,
      `sender_dependent_relayhost_maps = inline:{ {@acme.bench = ${sink}} }`,
      'smtp_tls_security_level = none',
      'smtputf8_enable = no',
      // The same number of upstream connections the relay may use.
      'default_destination_concurrency_limit = 50',
      'default_process_limit = 200',
      'smtpd_client_connection_count_limit = 0',
      'smtpd_client_message_rate_limit = 0',
      'anvil_rate_time_unit = 60s',
      'smtpd_error_sleep_time = 0',
    ].join('\n'),
  );
  const run = (...args: string[]) => execFileSync(POSTFIX, ['-c', config, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  // postfix start creates the queue's subdirectories with their owners and modes (postfix-script check).
  run('start');
  await waitForPort(port);
  const version = execFileSync('/usr/sbin/postconf', ['-c', config, '-h', 'mail_version']).toString().trim();
  const masterPid = Number(fs.readFileSync(path.join(queue, 'pid', 'master.pid'), 'utf8').trim());
  return {
    port,
    version,
    cpuSeconds: () => treeCpuSeconds(masterPid),
    stop: () => {
      try {
        run('stop');
      } catch {
        // already stopped
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
