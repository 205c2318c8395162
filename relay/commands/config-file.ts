// What every command shares: where the config comes from.
import type { Config } from '../../config/types.js';
import { loadConfigFile } from '../../config/load.js';
import { defaultConfigFile } from '../paths.js';

/** --config FILE, else TENANT_RELAY_CONFIG, else the built-in development config. */
export function configFileFrom(values: { config?: string | undefined }): string {
  return values.config ?? process.env.TENANT_RELAY_CONFIG ?? defaultConfigFile;
}

export function loadFrom(values: { config?: string | undefined }): Config {
  return loadConfigFile(configFileFrom(values));
}
