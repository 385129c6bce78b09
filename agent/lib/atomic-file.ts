import { randomBytes } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import { dirname, join } from "node:path";

/** Mode of every directory the agent creates: owner only. */
export const PRIVATE_DIR_MODE = 0o700;
/** Mode of every file the agent writes: owner read/write only. */
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Creates `dir` (and parents) if needed and makes sure it is 0700: an existing directory with
 * wider permissions is tightened, because it holds the identity key.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const st = await fs.stat(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  if ((st.mode & 0o777) !== PRIVATE_DIR_MODE) await fs.chmod(dir, PRIVATE_DIR_MODE);
}

/**
 * Writes a file so that readers (and a crash at any instant) see either the old content or
 * the new one, never a mix: write a temp file in the same directory, fsync it, rename it over
 * the target, fsync the directory so the rename itself is durable. The file is 0600 whatever
 * the umask. `durable: false` skips both fsyncs (still atomic, not crash-durable) for files
 * that are only informational.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: { exclusive?: boolean; durable?: boolean } = {}): Promise<void> {
  const durable = options.durable ?? true;
  const dir = dirname(path);
  const tmp = join(dir, `.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, PRIVATE_FILE_MODE);
  try {
    await handle.chmod(PRIVATE_FILE_MODE);
    await handle.writeFile(data);
    if (durable) await handle.sync();
  } catch (err) {
    await handle.close().catch(() => {});
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    if (options.exclusive) {
      // link() fails if the target exists: "create once" semantics for the identity key.
      await fs.link(tmp, path);
      await fs.rm(tmp, { force: true });
    } else {
      await fs.rename(tmp, path);
    }
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  if (durable) await fsyncDir(dir);
}

/** Makes directory entry changes (create, rename, unlink) in `dir` durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } catch (err) {
    // Some filesystems refuse fsync on directories (EINVAL); there is nothing more to do there.
    if ((err as NodeJS.ErrnoException).code !== "EINVAL") throw err;
  } finally {
    await handle.close();
  }
}

/** Reads a file, or undefined if it does not exist. */
export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await fs.readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Removes temp files a crash left behind (names written by writeFileAtomic). */
export async function removeStaleTempFiles(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n.startsWith(".") && n.endsWith(".tmp")).map((n) => fs.rm(join(dir, n), { force: true })));
}
