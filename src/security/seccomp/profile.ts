// Which seccomp section a `tsrun run` container gets: the default profile for its
// capabilities, a Docker/OCI profile from a file, or none (unconfined).
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { TsrunError } from '../../errors.js';
import { nativeArch, type LinuxSeccomp } from './compile.js';
import { defaultSeccompProfile } from './default-profile.js';
import { dockerProfileToOci } from './docker-profile.js';

export function seccompForContainer(choice: 'default' | 'unconfined' | { file: string }, capabilities: string[]): LinuxSeccomp | undefined {
  if (choice === 'unconfined') return undefined;
  const ctx = { capabilities, kernelRelease: release(), arch: nativeArch() };
  if (choice === 'default') return defaultSeccompProfile(ctx);
  let text: string;
  try {
    text = readFileSync(choice.file, 'utf8');
  } catch (e) {
    throw new TsrunError('USAGE', `--security-opt seccomp=${choice.file}: ${(e as Error).message}`, { hint: 'give the path of a JSON seccomp profile, or seccomp=unconfined' });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new TsrunError('USAGE', `--security-opt seccomp=${choice.file}: not valid JSON: ${(e as Error).message}`);
  }
  return dockerProfileToOci(raw, ctx, choice.file);
}
