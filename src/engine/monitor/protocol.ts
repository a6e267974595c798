// What the CLI and the monitor say to each other over <runRoot>/monitor.sock: one JSON
// request per connection, one JSON reply line, then the monitor closes.
export type MonitorRequest =
  | { op: 'ping' }
  | { op: 'start'; id: string }
  | { op: 'stop'; id: string; timeout?: number; signal?: number }
  | { op: 'kill'; id: string; signal: number }
  | { op: 'wait'; id: string }
  | { op: 'pause'; id: string }
  | { op: 'unpause'; id: string }
  /** the record is about to be removed: stop watching it (after killing it) */
  | { op: 'forget'; id: string };

export interface MonitorReply {
  ok: boolean;
  /** for failures: a serialized TsrunError */
  error?: { code: string; message: string; hint?: string };
  pid?: number;
  exitCode?: number;
  /** the monitor exits once this reply is sent (nothing left to watch) */
  exiting?: boolean;
  monitorPid?: number;
}

export function socketPath(runRoot: string): string {
  return `${runRoot}/monitor.sock`;
}
