// What the CLI and the monitor say to each other over <runRoot>/monitor.sock: one JSON
// request per connection, one JSON reply line, then the monitor closes. The exception
// is `attach` (a -t container's terminal): after its reply line the connection stays
// open and carries raw bytes, the CLI's keystrokes in and the terminal's output out,
// until the container exits or the CLI detaches; window sizes go as `resize` requests.
export type MonitorRequest =
  | { op: 'ping' }
  | { op: 'start'; id: string }
  | { op: 'stop'; id: string; timeout?: number; signal?: number }
  | { op: 'kill'; id: string; signal: number }
  | { op: 'wait'; id: string }
  | { op: 'pause'; id: string }
  | { op: 'unpause'; id: string }
  /** the record is about to be removed: stop watching it (after killing it) */
  | { op: 'forget'; id: string }
  /** a -t container's pty: the connection becomes a byte stream (a container not yet started is attached at its start) */
  | { op: 'attach'; id: string }
  | { op: 'resize'; id: string; rows: number; cols: number };

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
